//go:build !unix

package devicebuf

// hostAlloc returns n bytes of zeroed memory (Go memory on this platform).
func hostAlloc(n int64) ([]byte, error) {
	if n <= 0 {
		n = 1
	}
	return make([]byte, n), nil
}

// hostFree frees memory of hostAlloc.
func hostFree(b []byte) error { return nil }
