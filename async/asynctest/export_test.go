package asynctest

import "time"

// SetTimeout shortens the checks' deadline for tests that run checks meant
// to fail by hanging; it returns a func restoring it.
func SetTimeout(d time.Duration) (restore func()) {
	old := timeout
	timeout = d
	return func() { timeout = old }
}
