//go:build unix

package devicebuf

import "syscall"

// hostAlloc returns n bytes of zeroed memory outside the Go heap (an
// anonymous mapping), standing in for pinned memory where no driver pins it.
func hostAlloc(n int64) ([]byte, error) {
	if n <= 0 {
		n = 1
	}
	return syscall.Mmap(-1, 0, int(n), syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_ANON|syscall.MAP_PRIVATE)
}

// hostFree frees memory of hostAlloc.
func hostFree(b []byte) error { return syscall.Munmap(b[:cap(b)]) }
