package email

import (
	"os"

	"golang.org/x/sys/unix"
)

// datasync flushes a file's data and the metadata needed to read it back
// (its size), but not its times: fdatasync(2), cheaper than fsync.
func datasync(f *os.File) error {
	for {
		err := unix.Fdatasync(int(f.Fd()))
		if err != unix.EINTR {
			return err
		}
	}
}
