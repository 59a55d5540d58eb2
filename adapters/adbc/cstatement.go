package adbc

import (
	"reflect"
	"runtime"
	"unsafe"

	goadbc "github.com/apache/arrow-adbc/go/adbc"
	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/cdata"
	"github.com/ebitengine/purego"
)

// This file reaches two ADBC 1.1 statement functions that C drivers
// implement but the Go driver manager (adbc/drivermgr v1.12) does not
// expose: AdbcStatementCancel, which a long-running query needs to stop
// promptly, and AdbcStatementExecuteSchema, for the schema before any row.
//
// drivermgr's statement holds the C struct AdbcStatement in its first
// field; that struct's private_driver points to the driver manager's
// struct AdbcDriver, whose function table (ADBC 1.1.0 layout, which the
// manager always fills, with NOT_IMPLEMENTED stubs for drivers of 1.0.0)
// holds the two functions. They are called through purego, so this package
// needs no cgo of its own. The shape of drivermgr's type is checked before
// any use; a different shape (another drivermgr version) simply means the
// capabilities are absent.

// Slots of struct AdbcDriver (adbc.h, 1.1.0) in pointer-sized words,
// checked against the header with offsetof.
const (
	slotStatementCancel        = 49
	slotStatementExecuteSchema = 50
	offStatementPrivateDriver  = 8
)

// cError is struct AdbcError (48 bytes on 64-bit platforms).
type cError struct {
	message       *byte
	vendorCode    int32
	sqlstate      [5]byte
	release       uintptr
	privateData   uintptr
	privateDriver uintptr
}

// cStatement is the C statement behind a drivermgr statement.
type cStatement struct {
	st  unsafe.Pointer // struct AdbcStatement*
	drv unsafe.Pointer // struct AdbcDriver*
}

// drivermgrStmt is the type cStatementOf recognises.
const drivermgrPkg = "github.com/apache/arrow-adbc/go/adbc/drivermgr"

// cStatementOf returns the C statement behind s, or nil when s is not a
// drivermgr statement of the expected shape.
func cStatementOf(s goadbc.Statement) *cStatement {
	if unsafe.Sizeof(uintptr(0)) != 8 {
		return nil
	}
	v := reflect.ValueOf(s)
	if v.Kind() != reflect.Pointer || v.IsNil() {
		return nil
	}
	e := v.Elem()
	t := e.Type()
	if t.Kind() != reflect.Struct || t.PkgPath() != drivermgrPkg || t.Name() != "stmt" || t.NumField() != 1 {
		return nil
	}
	f := t.Field(0)
	if f.Name != "st" || f.Type.Kind() != reflect.Pointer || f.Type.Elem().Size() != 16 {
		return nil
	}
	st := e.Field(0).UnsafePointer()
	if st == nil {
		return nil
	}
	drv := *(*unsafe.Pointer)(unsafe.Add(st, offStatementPrivateDriver))
	if drv == nil {
		return nil
	}
	return &cStatement{st: st, drv: drv}
}

// fn returns the function in slot, or 0.
func (c *cStatement) fn(slot int) uintptr {
	return *(*uintptr)(unsafe.Add(c.drv, slot*int(unsafe.Sizeof(uintptr(0)))))
}

// cancel calls AdbcStatementCancel. It is safe to call from another
// goroutine while the statement is executing or its stream is being read
// (that is its purpose); the caller guarantees the statement is not being
// released concurrently.
func (c *cStatement) cancel() error {
	f := c.fn(slotStatementCancel)
	if f == 0 {
		return goadbc.Error{Code: goadbc.StatusNotImplemented, Msg: "StatementCancel"}
	}
	var e cError
	var pin runtime.Pinner
	pin.Pin(&e)
	defer pin.Unpin()
	r, _, _ := purego.SyscallN(f, uintptr(c.st), uintptr(unsafe.Pointer(&e)))
	return e.take(goadbc.Status(uint8(r)))
}

// executeSchema calls AdbcStatementExecuteSchema.
func (c *cStatement) executeSchema() (*arrow.Schema, error) {
	f := c.fn(slotStatementExecuteSchema)
	if f == 0 {
		return nil, goadbc.Error{Code: goadbc.StatusNotImplemented, Msg: "StatementExecuteSchema"}
	}
	var e cError
	out := new(cdata.CArrowSchema)
	var pin runtime.Pinner
	pin.Pin(&e)
	pin.Pin(out)
	defer pin.Unpin()
	r, _, _ := purego.SyscallN(f, uintptr(c.st), uintptr(unsafe.Pointer(out)), uintptr(unsafe.Pointer(&e)))
	if err := e.take(goadbc.Status(uint8(r))); err != nil {
		return nil, err
	}
	return cdata.ImportCArrowSchema(out)
}

// take converts a status and the error the driver filled into a Go error
// (nil for OK), releasing the C error.
func (e *cError) take(code goadbc.Status) error {
	var msg string
	if e.message != nil {
		msg = cString(e.message)
	}
	out := goadbc.Error{Code: code, Msg: msg, VendorCode: e.vendorCode, SqlState: e.sqlstate}
	if e.release != 0 {
		purego.SyscallN(e.release, uintptr(unsafe.Pointer(e)))
	}
	if code == goadbc.StatusOK {
		return nil
	}
	if out.Msg == "" {
		out.Msg = code.String()
	}
	return out
}

// cString copies a NUL-terminated C string.
func cString(p *byte) string {
	n := 0
	for *(*byte)(unsafe.Add(unsafe.Pointer(p), n)) != 0 {
		n++
	}
	return string(unsafe.Slice(p, n))
}
