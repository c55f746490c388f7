package store

import (
	"fmt"
	"path/filepath"
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
// (one transaction) per op, with 1, 10 or 100 entries.
func BenchmarkAppendArchiveBatch(b *testing.B) {
	for _, bb := range benchBackends(b) {
		for _, size := range []int{1, 10, 100} {
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

// BenchmarkQueryArchive measures paging 50 entries out of a 10,000-entry
// room (in a 30,000-entry archive).
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
		if bb.name == "postgres" {
			// What autovacuum does within a minute of a bulk load;
			// without statistics the planner picks archive_time.
			if _, err := s.b.writer().exec(ctx, "VACUUM ANALYZE archive"); err != nil {
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
