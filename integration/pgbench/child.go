package pgbench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/volleyhq/volley/adapters/adbc"
	"github.com/volleyhq/volley/adapters/postgres"
	"github.com/volleyhq/volley/async"
	"github.com/volleyhq/volley/driver"
)

// runMode drains sql once in this process and returns rows and bytes seen
// (rows is -1 where the mode cannot count them).
func runMode(ctx context.Context, m Mode, dsn, sql string, batchBytes int64, window int) (int64, int64, error) {
	switch m {
	case PgxRaw:
		c, err := pgconn.Connect(ctx, dsn)
		if err != nil {
			return 0, 0, err
		}
		defer c.Close(context.Background())
		var n counter
		_, err = c.CopyTo(ctx, &n, "COPY ("+sql+") TO STDOUT (FORMAT binary)")
		return -1, int64(n), err
	case PgxScan:
		return scan(ctx, dsn, sql)
	case Volley:
		return volley(ctx, dsn, sql, batchBytes, window)
	case ADBC:
		return adbcRead(ctx, dsn, sql, batchBytes)
	}
	return 0, 0, fmt.Errorf("pgbench: unknown child mode %q", m)
}

type counter int64

func (c *counter) Write(p []byte) (int, error) { *c += counter(len(p)); return len(p), nil }

// scan runs pgx Query and scans each row into typed destinations chosen
// from the columns' types.
func scan(ctx context.Context, dsn, sql string) (int64, int64, error) {
	c, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return 0, 0, err
	}
	defer c.Close(context.Background())
	rows, err := c.Query(ctx, sql)
	if err != nil {
		return 0, 0, err
	}
	defer rows.Close()
	fds := rows.FieldDescriptions()
	dests := make([]any, len(fds))
	for i, fd := range fds {
		switch fd.DataTypeOID {
		case pgtype.Int8OID:
			dests[i] = new(int64)
		case pgtype.Int4OID:
			dests[i] = new(int32)
		case pgtype.NumericOID:
			dests[i] = new(pgtype.Numeric)
		case pgtype.DateOID, pgtype.TimestampOID, pgtype.TimestamptzOID:
			dests[i] = new(time.Time)
		case pgtype.BPCharOID, pgtype.VarcharOID, pgtype.TextOID:
			dests[i] = new(string)
		default:
			dests[i] = new(any)
		}
	}
	var n int64
	for rows.Next() {
		if err := rows.Scan(dests...); err != nil {
			return n, 0, err
		}
		n++
	}
	return n, 0, rows.Err()
}

// volley streams sql through the adapter, async.Produce and a Reader.
func volley(ctx context.Context, dsn, sql string, batchBytes int64, window int) (int64, int64, error) {
	conn, err := postgres.Driver{}.Open(ctx, dsn)
	if err != nil {
		return 0, 0, err
	}
	defer conn.Close()
	src, err := conn.Query(ctx, &driver.Request{SQL: sql, BatchBytes: batchBytes})
	if err != nil {
		return 0, 0, err
	}
	r := async.NewReader(async.ReaderOptions{Window: window})
	st := async.Start(ctx, r, src, async.ProduceOptions{})
	rows, size, err := drain(ctx, r.Next)
	r.Close()
	if werr := st.Wait(); err == nil {
		err = werr
	}
	return rows, size, err
}

// adbcRead streams sql through Volley's adbc adapter onto the CPU; dsn is
// the adapter's (driver library, entry point, options).
func adbcRead(ctx context.Context, dsn, sql string, batchBytes int64) (int64, int64, error) {
	cfg, err := adbc.ParseDSN(dsn)
	if err != nil {
		return 0, 0, err
	}
	c, err := cfg.Connector()
	if err != nil {
		return 0, 0, err
	}
	defer c.Close()
	db, err := driver.OpenDB(c, driver.Config{MaxOpen: 1, MaxIdle: 1})
	if err != nil {
		return 0, 0, err
	}
	defer db.Close()
	opts := []driver.QueryOption{driver.OnDevice("cpu"), driver.WithAccept(async.DeviceCPU)}
	if batchBytes > 0 {
		opts = append(opts, driver.WithBatchBytes(batchBytes))
	}
	rows, err := db.Stream(ctx, sql, nil, opts...)
	if err != nil {
		return 0, 0, err
	}
	n, size, err := drain(ctx, rows.Next)
	if cerr := rows.Close(); err == nil {
		err = cerr
	}
	return n, size, err
}

// drain reads batches with next until io.EOF or an error, releasing each,
// and returns the rows and bytes (of the batches' buffers) seen.
func drain(ctx context.Context, next func(context.Context) (*async.DeviceBatch, error)) (int64, int64, error) {
	var rows, size int64
	for {
		b, err := next(ctx)
		if errors.Is(err, io.EOF) {
			return rows, size, nil
		}
		if err != nil {
			return rows, size, err
		}
		rows += b.NumRows
		for _, col := range b.Record.Columns() {
			size += dataSize(col.Data())
		}
		b.Release()
	}
}

// dataSize is the byte size of an array's buffers, children included.
func dataSize(d arrow.ArrayData) int64 {
	var n int64
	for _, b := range d.Buffers() {
		if b != nil {
			n += int64(b.Len())
		}
	}
	for _, c := range d.Children() {
		n += dataSize(c)
	}
	return n
}
