package store

import (
	"fmt"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

func benchBackends(b *testing.B) []struct {
	name string
	be   testBackend
} {
	out := []struct {
		name string
		be   testBackend
	}{{"sqlite", sqliteTestBackend}}
	if len(postgresCandidatesForBench()) > 0 {
		out = append(out, struct {
			name string
			be   testBackend
		}{"postgres", postgresTestBackend(b)})
	}
	return out
}

// postgresCandidatesForBench keeps the PostgreSQL runs to machines that have it.
func postgresCandidatesForBench() []string {
	ms, _ := filepath.Glob("/usr/lib/postgresql/*/bin/postgres")
	return ms
}

// BenchmarkAppendArchiveBatch measures the group commit: one AppendArchive
// (one transaction) per op, with 1, 10, 100 or 1000 entries over 7 rooms.
func BenchmarkAppendArchiveBatch(b *testing.B) {
	for _, bb := range benchBackends(b) {
		for _, size := range []int{1, 10, 100, 1000} {
			b.Run(fmt.Sprintf("%s/batch=%d", bb.name, size), func(b *testing.B) {
				s := bb.be.open(b)
				batch := make([]ArchiveEntry, size)
				b.ReportAllocs()
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					for j := range batch {
						batch[j] = ArchiveEntry{User: "u@x", Transport: "irc", Peer: fmt.Sprintf("#chan%d%%net", j%7),
							Nick: "bob", Body: "a typical IRC line of some sixty characters, give or take a few"}
					}
					if err := s.AppendArchive(ctx, batch); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(b.N*size)/b.Elapsed().Seconds(), "entries/s")
			})
		}
	}
}

// cpuTime is the CPU time (user and system) this process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkAppendArchiveCPU reports wall and CPU time per entry
// (cpu-ns/entry is this process's: the whole of SQLite, the client side of
// PostgreSQL) for the batches of transports/irc/archive.go: one user in
// two rooms, entries interleaved; and the worst case for chunks, one
// message to a room of 1000 users (one entry per archive).
func BenchmarkAppendArchiveCPU(b *testing.B) {
	for _, bb := range benchBackends(b) {
		for _, c := range []struct {
			name         string
			users, peers int
			size         int
		}{{"peers=2/batch=100", 1, 2, 100}, {"peers=2/batch=1000", 1, 2, 1000}, {"users=1000/batch=1000", 1000, 1, 1000}} {
			b.Run(bb.name+"/"+c.name, func(b *testing.B) {
				s := bb.be.open(b)
				batch := make([]ArchiveEntry, c.size)
				users := make([]string, c.users)
				for i := range users {
					users[i] = fmt.Sprintf("user%d@example.org", i)
				}
				peers := make([]string, c.peers)
				for i := range peers {
					peers[i] = fmt.Sprintf("#channel%d%%libera", i)
				}
				b.ReportAllocs()
				b.ResetTimer()
				cpu := cpuTime()
				for i := 0; i < b.N; i++ {
					for j := range batch {
						batch[j] = ArchiveEntry{User: users[j%c.users], Transport: "irc", Peer: peers[j%c.peers],
							Nick: "bob", Body: "a typical IRC line of some sixty characters, give or take a few"}
					}
					if err := s.AppendArchive(ctx, batch); err != nil {
						b.Fatal(err)
					}
				}
				n := float64(b.N * c.size)
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/n, "ns/entry")
				b.ReportMetric(float64(cpuTime()-cpu)/n, "cpu-ns/entry")
			})
		}
	}
}

// BenchmarkQueryArchive measures paging 50 entries out of a 10,000-entry
// room (in a 30,000-entry archive) written 1000 entries at a time, and
// (small-chunks) out of a 10,000-entry room written 5 at a time.
func BenchmarkQueryArchive(b *testing.B) {
	for _, bb := range benchBackends(b) {
		s := bb.be.open(b)
		var ids []string
		for room := range 3 {
			for k := 0; k < 10000; k += 1000 {
				batch := make([]ArchiveEntry, 1000)
				for j := range batch {
					nick := "bob"
					if j%10 == 0 {
						nick = "carol"
					}
					batch[j] = ArchiveEntry{User: "u@x", Transport: "irc", Peer: fmt.Sprintf("#room%d%%net", room), Nick: nick,
						Body: "a typical IRC line", Time: archiveBase.Add(time.Duration(k+j) * time.Second)}
				}
				if err := s.AppendArchive(ctx, batch); err != nil {
					b.Fatal(err)
				}
				if room == 0 {
					for _, e := range batch {
						ids = append(ids, e.ID)
					}
				}
			}
		}
		// The same room archived 5 entries at a time (a busy room of many
		// gateway users: few entries per archive and batch).
		var small []string
		for k := 0; k < 10000; k += 5 {
			batch := make([]ArchiveEntry, 5)
			for j := range batch {
				nick := "bob"
				if (k+j)%10 == 0 {
					nick = "carol"
				}
				batch[j] = ArchiveEntry{User: "w@x", Transport: "irc", Peer: "#room0%net", Nick: nick,
					Body: "a typical IRC line", Time: archiveBase.Add(time.Duration(k+j) * time.Second)}
			}
			if err := s.AppendArchive(ctx, batch); err != nil {
				b.Fatal(err)
			}
			for _, e := range batch {
				small = append(small, e.ID)
			}
		}
		if bb.name == "postgres" {
			// What autovacuum does within a minute of a bulk load.
			if _, err := s.b.writer().exec(ctx, "VACUUM ANALYZE archive_chunks"); err != nil {
				b.Fatal(err)
			}
		}
		for _, c := range []struct {
			name string
			q    func(i int) ArchiveQuery
		}{
			{"last-page", func(int) ArchiveQuery {
				return ArchiveQuery{User: "u@x", Transport: "irc", Peer: "#room0%net", Before: true}
			}},
			{"after-id", func(i int) ArchiveQuery {
				return ArchiveQuery{User: "u@x", Transport: "irc", Peer: "#room0%net", AfterID: ids[(i*97)%9000]}
			}},
			{"before-id", func(i int) ArchiveQuery {
				return ArchiveQuery{User: "u@x", Transport: "irc", Peer: "#room0%net", BeforeID: ids[1000+(i*97)%9000]}
			}},
			{"with-nick", func(i int) ArchiveQuery {
				return ArchiveQuery{User: "u@x", Transport: "irc", Peer: "#room0%net", With: "carol", AfterID: ids[(i*97)%4000]}
			}},
			{"time-range", func(i int) ArchiveQuery {
				start := archiveBase.Add(time.Duration((i*97)%9000) * time.Second)
				return ArchiveQuery{User: "u@x", Transport: "irc", Peer: "#room0%net", Start: start, End: start.Add(time.Hour)}
			}},
			{"small-chunks/last-page", func(int) ArchiveQuery {
				return ArchiveQuery{User: "w@x", Transport: "irc", Peer: "#room0%net", Before: true}
			}},
			{"small-chunks/after-id", func(i int) ArchiveQuery {
				return ArchiveQuery{User: "w@x", Transport: "irc", Peer: "#room0%net", AfterID: small[(i*97)%9000]}
			}},
			{"small-chunks/with-nick", func(i int) ArchiveQuery {
				return ArchiveQuery{User: "w@x", Transport: "irc", Peer: "#room0%net", With: "carol", AfterID: small[(i*97)%4000]}
			}},
		} {
			b.Run(bb.name+"/"+c.name, func(b *testing.B) {
				b.ReportAllocs()
				n := 0
				for i := 0; i < b.N; i++ {
					p, err := s.QueryArchive(ctx, c.q(i))
					if err != nil {
						b.Fatal(err)
					}
					if len(p.Entries) == 0 {
						b.Fatal("empty page")
					}
					n += len(p.Entries)
				}
				b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "entries/s")
			})
		}
	}
}
