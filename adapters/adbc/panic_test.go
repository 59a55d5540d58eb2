package adbc_test

import (
	"context"
	"errors"
	"testing"

	goadbc "github.com/apache/arrow-adbc/go/adbc"
	"github.com/apache/arrow-adbc/go/adbc/drivermgr"
	"github.com/apache/arrow-go/v18/arrow/array"

	"github.com/volleyhq/volley/adapters/adbc"
	"github.com/volleyhq/volley/async"
	"github.com/volleyhq/volley/integration/duckdbtest"
)

// The panicking wrappers below sit on DuckDB's real driver and panic at
// one chosen call.

type panicDB struct {
	goadbc.Database
	at string
}

func (d panicDB) Open(ctx context.Context) (goadbc.Connection, error) {
	if d.at == "open" {
		panic("boom in Open")
	}
	c, err := d.Database.Open(ctx)
	return panicConn{c, d.at}, err
}

type panicConn struct {
	goadbc.Connection
	at string
}

func (c panicConn) NewStatement() (goadbc.Statement, error) {
	if c.at == "statement" {
		panic("boom in NewStatement")
	}
	s, err := c.Connection.NewStatement()
	return &panicStmt{s, c.at}, err
}

type panicStmt struct {
	goadbc.Statement
	at string
}

func (s *panicStmt) ExecuteQuery(ctx context.Context) (array.RecordReader, int64, error) {
	if s.at == "execute" {
		panic("boom in ExecuteQuery")
	}
	r, n, err := s.Statement.ExecuteQuery(ctx)
	if err == nil && s.at == "next" {
		r = panicReader{r}
	}
	return r, n, err
}

type panicReader struct{ array.RecordReader }

func (panicReader) Next() bool { panic("boom in Next") }

func TestDriverPanicBecomesError(t *testing.T) {
	db, err := drivermgr.Driver{}.NewDatabase(map[string]string{
		"driver": duckdbtest.DriverPath(t), "entrypoint": adbc.DuckDBEntryPoint, "path": ":memory:"})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, at := range []string{"open", "statement", "execute", "next"} {
		t.Run(at, func(t *testing.T) {
			c := adbc.NewConnector(panicDB{db, at}, adbc.Config{})
			conn, err := c.Connect(context.Background())
			if at == "open" {
				if !errors.Is(err, adbc.ErrDriverPanic) {
					t.Fatalf("Connect = %v, want ErrDriverPanic", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			res := query(t, conn, "SELECT 1")
			if !errors.Is(res.prodErr, adbc.ErrDriverPanic) {
				t.Fatalf("stream ended with %v, want ErrDriverPanic", res.prodErr)
			}
			var ae *async.Error
			if !errors.As(res.prodErr, &ae) || ae.Code != async.EIO {
				t.Errorf("error %v: want an *async.Error with EIO", res.prodErr)
			}
			if conn.(*adbc.Conn).IsValid() {
				t.Error("the connection is still valid after a driver panic")
			}
		})
	}
}
