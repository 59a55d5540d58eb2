// Test-only access to internals.
package postgres

import "fmt"

func (c *Conn) DebugState() string {
	return fmt.Sprintf("closed=%v broken=%v pgclosed=%v busy=%v tx=%c", c.closed, c.broken.Load(), c.pg.IsClosed(), c.pg.IsBusy(), c.pg.TxStatus())
}
