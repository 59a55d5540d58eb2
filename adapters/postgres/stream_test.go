package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/volleyhq/volley/adapters/postgres"
	"github.com/volleyhq/volley/async"
	"github.com/volleyhq/volley/async/asynctest"
	"github.com/volleyhq/volley/driver"
	"github.com/volleyhq/volley/integration/pgtest"
)

// admin runs a one-row query on a fresh connection and returns its text.
func admin(t testing.TB, dsn, sql string, args ...string) string {
	t.Helper()
	ctx := context.Background()
	c, err := pgconn.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	params := make([][]byte, len(args))
	for i, a := range args {
		params[i] = []byte(a)
	}
	res := c.ExecParams(ctx, sql, params, nil, nil, nil).Read()
	if res.Err != nil {
		t.Fatalf("%s: %v", sql, res.Err)
	}
	if len(res.Rows) == 0 || res.Rows[0][0] == nil {
		return ""
	}
	return string(res.Rows[0][0])
}

// waitGone waits until the backend pid runs no query any more (or is gone).
func waitGone(t *testing.T, dsn string, pid uint32) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		st := admin(t, dsn, "SELECT coalesce((SELECT state FROM pg_stat_activity WHERE pid = $1::int), 'gone')", fmt.Sprint(pid))
		if st != "active" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("backend %d still active 10s after cancel", pid)
		}
		time.Sleep(20 * time.Millisecond) // waiting on another process: nothing to block on
	}
}

// waitWaitEvent waits until the backend pid shows wait_event ev.
func waitWaitEvent(t *testing.T, dsn string, pid uint32, ev string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		got := admin(t, dsn, "SELECT coalesce(wait_event, '') FROM pg_stat_activity WHERE pid = $1::int", fmt.Sprint(pid))
		if got == ev {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("backend %d: wait_event %q, want %q", pid, got, ev)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func sumInt64(recs []arrow.RecordBatch) (rows, sum int64) {
	for _, r := range recs {
		rows += r.NumRows()
		a := r.Column(0).(*array.Int64)
		for i := 0; i < a.Len(); i++ {
			sum += a.Value(i)
		}
	}
	return
}

func TestBatchBounds(t *testing.T) {
	c, _ := connect(t, dsn(t), postgres.Config{})
	for _, tc := range []struct {
		name string
		req  driver.Request
	}{
		{"copy-bytes", driver.Request{SQL: "SELECT g::int8, repeat('x', 100) FROM generate_series(1, 20000) g", BatchBytes: 64 << 10}},
		{"copy-rows", driver.Request{SQL: "SELECT g::int8, 'y' FROM generate_series(1, 20000) g", BatchBytes: 16 << 20, BatchRows: 3000}},
		{"extended-bytes", driver.Request{SQL: "SELECT g::int8, repeat('x', 100) FROM generate_series(1, $1::int) g", Args: []any{20000}, BatchBytes: 64 << 10}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, recs, err := readAll(context.Background(), c, &tc.req)
			if err != nil {
				t.Fatal(err)
			}
			defer release(recs)
			rows, sum := sumInt64(recs)
			if rows != 20000 || sum != 20000*20001/2 {
				t.Fatalf("rows %d sum %d", rows, sum)
			}
			if len(recs) < 2 {
				t.Fatalf("%d batches, want several", len(recs))
			}
			for i, r := range recs[:len(recs)-1] {
				if tc.req.BatchRows > 0 && r.NumRows() != tc.req.BatchRows {
					t.Errorf("batch %d: %d rows, want %d", i, r.NumRows(), tc.req.BatchRows)
				}
				// Wire size 8+100 bytes + 8 of length headers per row (+2
				// for the field count of a COPY tuple).
				if tc.req.BatchRows == 0 {
					wire := r.NumRows() * (8 + 100 + 8)
					if wire < tc.req.BatchBytes*98/100 || wire > tc.req.BatchBytes+200 {
						t.Errorf("batch %d: %d rows ≈ %d bytes, bound %d", i, r.NumRows(), wire, tc.req.BatchBytes)
					}
				}
			}
		})
	}
	if !c.IsValid() {
		t.Fatal("connection invalid after clean reads")
	}
}

func TestSchemaBeforeRows(t *testing.T) {
	d := dsn(t)
	exec(t, d, "DROP SEQUENCE IF EXISTS sbr_seq; CREATE SEQUENCE sbr_seq")
	c, _ := connect(t, d, postgres.Config{})
	ctx := context.Background()
	src, err := c.Query(ctx, &driver.Request{SQL: "SELECT nextval('sbr_seq') AS n, 'a'::text AS s", BatchBytes: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	schema, err := src.Schema(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if schema.NumFields() != 2 || schema.Field(0).Name != "n" || !arrow.TypeEqual(schema.Field(0).Type, arrow.PrimitiveTypes.Int64) {
		t.Fatalf("schema %s", schema)
	}
	if err := src.Close(); err != nil {
		t.Fatal(err)
	}
	if v := admin(t, d, "SELECT last_value::text || is_called::text FROM sbr_seq"); v != "1false" {
		t.Fatalf("Schema executed the statement: sequence state %q", v)
	}
	// Empty results still have a schema, on both paths.
	for _, req := range []driver.Request{
		{SQL: "SELECT 1::int4 AS a, 'x'::text AS b WHERE false"},
		{SQL: "SELECT 1::int4 AS a, 'x'::text AS b WHERE $1::bool", Args: []any{false}},
	} {
		schema, recs, err := readAll(ctx, c, &req)
		if err != nil {
			t.Fatal(err)
		}
		if schema.NumFields() != 2 || len(recs) != 0 {
			t.Fatalf("empty result: schema %s, %d batches", schema, len(recs))
		}
	}
	// Statements COPY cannot wrap go through the extended protocol.
	for _, sql := range []string{"SHOW server_version", "EXPLAIN SELECT 1", "/* c */ (VALUES (1), (2))",
		"CREATE TEMP TABLE sbr_t AS SELECT 1 AS x", "INSERT INTO sbr_t VALUES (2) RETURNING x", "SELECT 1;",
		"SELECT 1 -- trailing comment", "SELECT 1; -- comment after the semicolon", "SELECT 1 INTO TEMP sbr_u",
		"WITH a AS (INSERT INTO sbr_t VALUES (3) RETURNING x) SELECT * FROM a"} {
		_, recs, err := readAll(ctx, c, &driver.Request{SQL: sql})
		if err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
		var n int64
		for _, r := range recs {
			n += r.NumRows()
		}
		release(recs)
		if strings.HasPrefix(sql, "SELECT 1") && !strings.Contains(sql, "INTO") && n != 1 {
			t.Fatalf("%s: %d rows, want 1", sql, n)
		}
	}
}

func TestErrors(t *testing.T) {
	c, _ := connect(t, dsn(t), postgres.Config{})
	ctx := context.Background()
	for _, tc := range []struct {
		sql   string
		args  []any
		code  async.Errno
		state string
	}{
		{"SELEC 1", nil, async.EINVAL, "42601"},
		{"SELECT * FROM no_such_table", nil, async.EINVAL, "42P01"},
		{"SELECT no_such_column FROM pg_class", nil, async.EINVAL, "42703"},
		{"SELECT $1::int + $2::int", []any{1}, async.EINVAL, ""},
		{"SELECT $1::int", []any{"abc"}, async.EINVAL, ""},
		{"SELECT 1/(g-g) FROM generate_series(1, 3) g", nil, async.EINVAL, "22012"},
		{"SELECT 1/(g-g) FROM generate_series(1, 3) g WHERE $1", []any{true}, async.EINVAL, "22012"},
		{"SELECT ARRAY[[1,2],[3,4]]", nil, async.ENOTSUP, ""},
	} {
		_, recs, err := readAll(ctx, c, &driver.Request{SQL: tc.sql, Args: tc.args})
		release(recs)
		if err == nil {
			t.Errorf("%s: no error", tc.sql)
			continue
		}
		code, state := errCode(err)
		if code != tc.code || state != tc.state {
			t.Errorf("%s: %v: code %v state %q, want %v %q", tc.sql, err, code, state, tc.code, tc.state)
		}
		if tc.state != "" {
			var pe *pgconn.PgError
			if !errors.As(err, &pe) || !strings.Contains(err.Error(), pe.Message) {
				t.Errorf("%s: error %v does not carry the server message", tc.sql, err)
			}
		}
		if !c.IsValid() {
			t.Fatalf("%s: connection invalid after a statement error", tc.sql)
		}
	}
	if errors.Is(postgres.ErrMultiDimArray, async.ErrInvalid) {
		t.Fatal("ErrMultiDimArray should not be EINVAL")
	}
}

func TestSpecialPolicies(t *testing.T) {
	d := dsn(t)
	ctx := context.Background()
	t.Run("numeric-error", func(t *testing.T) {
		c, _ := connect(t, d, postgres.Config{NumericSpecial: postgres.SpecialError})
		_, _, err := readAll(ctx, c, &driver.Request{SQL: "SELECT v::numeric(10,2) AS price FROM (VALUES ('1'), ('NaN')) t(v)"})
		if code, _ := errCode(err); code != async.EOVERFLOW || !strings.Contains(fmt.Sprint(err), `"price"`) {
			t.Fatalf("err %v (code %v), want EOVERFLOW naming the column", err, code)
		}
		if !c.IsValid() {
			t.Fatal("connection invalid after a decode error")
		}
	})
	t.Run("date-clamp", func(t *testing.T) {
		c, _ := connect(t, d, postgres.Config{Infinity: postgres.SpecialClamp})
		_, recs, err := readAll(ctx, c, &driver.Request{SQL: "SELECT v::date FROM (VALUES ('infinity'), ('-infinity')) t(v)"})
		if err != nil {
			t.Fatal(err)
		}
		defer release(recs)
		a := recs[0].Column(0).(*array.Date32)
		if a.Value(0) != arrow.Date32(1<<31-1) || a.Value(1) != arrow.Date32(-1<<31) {
			t.Fatalf("clamped to %d, %d", a.Value(0), a.Value(1))
		}
	})
	t.Run("timestamp-error", func(t *testing.T) {
		c, _ := connect(t, d, postgres.Config{Infinity: postgres.SpecialError})
		_, _, err := readAll(ctx, c, &driver.Request{SQL: "SELECT 'infinity'::timestamp AS ts"})
		if code, _ := errCode(err); code != async.EOVERFLOW {
			t.Fatalf("err %v, want EOVERFLOW", err)
		}
	})
	t.Run("numeric-float64-dsn", func(t *testing.T) {
		conn, err := postgres.Driver{}.Open(ctx, withParam(d, "volley_numeric=float64"))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		_, recs, err := readAll(ctx, conn.(*postgres.Conn), &driver.Request{SQL: "SELECT 1.25::numeric AS x"})
		if err != nil {
			t.Fatal(err)
		}
		defer release(recs)
		if v := recs[0].Column(0).(*array.Float64).Value(0); v != 1.25 {
			t.Fatalf("got %v", v)
		}
	})
}

func TestDSN(t *testing.T) {
	for _, bad := range []string{
		"postgres://user:s3cretpw@127.0.0.1:notaport/db",
		"host=127.0.0.1 password=s3cretpw port=notaport",
		"postgres://user:s3cretpw@127.0.0.1/db?volley_numeric=bogus",
		"postgres://user:s3cretpw@127.0.0.1/db?volley_nosuch=1",
	} {
		_, err := postgres.Driver{}.OpenConnector(bad)
		if err == nil {
			t.Errorf("%q: no error", bad)
			continue
		}
		if strings.Contains(err.Error(), "s3cretpw") {
			t.Errorf("error leaks the password: %v", err)
		}
		if !errors.Is(err, async.ErrInvalid) {
			t.Errorf("%v: not ErrInvalid", err)
		}
	}
	// A failed connection's error carries no password either.
	_, err := postgres.Driver{}.Open(context.Background(), "postgres://user:s3cretpw@127.0.0.1:1/db?connect_timeout=2")
	if err == nil || strings.Contains(err.Error(), "s3cretpw") {
		t.Errorf("connect error %v", err)
	}
	ctr, err := postgres.Driver{}.OpenConnector("postgres://u@h/db?volley_numeric=decimal&volley_numeric_scale=4&volley_infinity=clamp&sslmode=disable")
	if err != nil || ctr.Driver() == nil {
		t.Fatal(err)
	}
	if got := driver.Drivers(); !strings.Contains(strings.Join(got, ","), "postgres,postgresql") {
		t.Fatalf("registered drivers %v", got)
	}
	if err := (postgres.Config{NumericScale: 39}).Validate(); !errors.Is(err, async.ErrInvalid) {
		t.Fatalf("Validate: %v", err)
	}
}

func TestTypesCreatedAfterConnect(t *testing.T) {
	d := dsn(t)
	exec(t, d, "DROP TYPE IF EXISTS late_enum CASCADE; DROP TYPE IF EXISTS late_comp CASCADE; CREATE TYPE late_comp AS (a int4)")
	c, _ := connect(t, d, postgres.Config{})
	ctx := context.Background()
	_, recs, err := readAll(ctx, c, &driver.Request{SQL: "SELECT ROW(1)::late_comp AS v"})
	if err != nil {
		t.Fatal(err)
	}
	release(recs)
	exec(t, d, "CREATE TYPE late_enum AS ENUM ('x', 'y'); ALTER TYPE late_comp ADD ATTRIBUTE b text")
	schema, recs, err := readAll(ctx, c, &driver.Request{SQL: "SELECT 'y'::late_enum AS e"})
	if err != nil {
		t.Fatal(err)
	}
	defer release(recs)
	if _, ok := schema.Field(0).Type.(*arrow.DictionaryType); !ok {
		t.Fatalf("enum created after connect: %s", schema.Field(0).Type)
	}
	// The altered composite is seen after ResetSession.
	if err := c.ResetSession(ctx); err != nil {
		t.Fatal(err)
	}
	schema, recs2, err := readAll(ctx, c, &driver.Request{SQL: "SELECT ROW(1, 'b')::late_comp AS v"})
	if err != nil {
		t.Fatal(err)
	}
	defer release(recs2)
	if st := schema.Field(0).Type.(*arrow.StructType); st.NumFields() != 2 {
		t.Fatalf("altered composite: %s", st)
	}
}

func TestEstimatePingCancelServer(t *testing.T) {
	c, _ := connect(t, dsn(t), postgres.Config{})
	ctx := context.Background()
	est, err := c.Estimate(ctx, &driver.Request{SQL: "SELECT g, g::text FROM generate_series(1, $1::int) g", Args: []any{5000}})
	if err != nil {
		t.Fatal(err)
	}
	if est.Rows <= 0 || est.Bytes < est.Rows {
		t.Fatalf("estimate %+v", est)
	}
	if err := c.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	// CancelServer from another goroutine stops a blocked Next.
	src, err := c.Query(ctx, &driver.Request{SQL: "SELECT pg_sleep(30)::text WHERE $1", Args: []any{true}, BatchBytes: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := src.Schema(ctx); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := src.Next(ctx)
		done <- err
	}()
	waitWaitEvent(t, dsn(t), c.PgConn().PID(), "PgSleep")
	if err := c.CancelServer(ctx); err != nil {
		t.Fatal(err)
	}
	err = <-done
	if code, state := errCode(err); code != async.ECANCELED || state != "57014" {
		t.Fatalf("Next after CancelServer: %v", err)
	}
	src.Close()
	if !c.IsValid() {
		t.Fatal("connection invalid after a server cancel")
	}
}

// TestCancel stops a long query in several ways and checks that the
// backend stopped and that the connection is still usable.
func TestCancel(t *testing.T) {
	d := dsn(t)
	const long = "SELECT generate_series(1, 1000000000)::int8 AS g"
	for _, tc := range []struct {
		name string
		req  driver.Request
		ctx  bool // cancel Next's ctx instead of calling Close
	}{
		{"copy-close", driver.Request{SQL: long, BatchRows: 1000}, false},
		{"extended-close", driver.Request{SQL: long + " WHERE $1", Args: []any{true}, BatchRows: 1000}, false},
		{"copy-ctx", driver.Request{SQL: "SELECT pg_sleep(30)::text"}, true},
		{"extended-ctx", driver.Request{SQL: "SELECT pg_sleep(30)::text WHERE $1", Args: []any{true}}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, _ := connect(t, d, postgres.Config{})
			pid := c.PgConn().PID()
			tc.req.BatchBytes = 1 << 20
			src, err := c.Query(context.Background(), &tc.req)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := src.Schema(context.Background()); err != nil {
				t.Fatal(err)
			}
			if tc.ctx {
				ctx, cancel := context.WithCancel(context.Background())
				done := make(chan error, 1)
				go func() {
					_, err := src.Next(ctx)
					done <- err
				}()
				waitWaitEvent(t, d, pid, "PgSleep")
				start := time.Now()
				cancel()
				err := <-done
				if !errors.Is(err, context.Canceled) {
					t.Fatalf("Next after cancel: %v", err)
				}
				if el := time.Since(start); el > 5*time.Second {
					t.Fatalf("Next took %v to honour ctx", el)
				}
			} else {
				b, err := src.Next(context.Background())
				if err != nil {
					t.Fatal(err)
				}
				b.Release()
				if tc.req.Args == nil {
					// The consumer stopped pulling: the server blocks on the socket.
					waitWaitEvent(t, d, pid, "ClientWrite")
				}
			}
			if err := src.Close(); err != nil {
				t.Fatalf("Close: %v", err)
			}
			waitGone(t, d, pid)
			if !c.IsValid() {
				t.Fatal("connection invalid after a drained cancel")
			}
			_, recs, err := readAll(context.Background(), c, &driver.Request{SQL: "SELECT 42::int8"})
			if err != nil {
				t.Fatal(err)
			}
			if _, sum := sumInt64(recs); sum != 42 {
				t.Fatalf("follow-up query: %d", sum)
			}
			release(recs)
		})
	}
}

func TestBackendTerminatedMidStream(t *testing.T) {
	d := dsn(t)
	for _, args := range [][]any{nil, {true}} {
		c, _ := connect(t, d, postgres.Config{})
		sql := "SELECT generate_series(1, 1000000000)::int8 AS g"
		if args != nil {
			sql += " WHERE $1"
		}
		src, err := c.Query(context.Background(), &driver.Request{SQL: sql, Args: args, BatchRows: 1000, BatchBytes: 1 << 20})
		if err != nil {
			t.Fatal(err)
		}
		b, err := src.Next(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		b.Release()
		admin(t, d, "SELECT pg_terminate_backend($1::int)::text", fmt.Sprint(c.PgConn().PID()))
		for err == nil {
			b, err = src.Next(context.Background())
			b.Release()
		}
		// The backend sends FATAL 57P01 when it can; when it is terminated
		// while blocked writing to a full socket, it cannot, and the client
		// sees the connection end after the buffered rows.
		code, state := errCode(err)
		if code != async.EIO || (state != "57P01" && state != "") || !strings.HasPrefix(err.Error(), "postgres") && state == "" {
			t.Errorf("args %v: err %v (code %v, state %q), want EIO with SQLSTATE 57P01 (or a lost connection)", args, err, code, state)
		}
		t.Logf("args %v: %v (state %q)", args, err, state)
		src.Close()
		if c.IsValid() {
			t.Error("connection valid after its backend was terminated")
		}
	}
}

func TestServerStoppedMidStream(t *testing.T) {
	srv := pgtest.NewPrivate(t)
	c, _ := connect(t, srv.DSN(), postgres.Config{})
	src, err := c.Query(context.Background(), &driver.Request{SQL: "SELECT generate_series(1, 1000000000)::int8 AS g", BatchRows: 1000, BatchBytes: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	b, err := src.Next(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	b.Release()
	if err := srv.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	for err == nil {
		b, err = src.Next(context.Background())
		b.Release()
	}
	code, state := errCode(err)
	t.Logf("after server stop: %v (code %v, state %q)", err, code, state)
	if code != async.EIO {
		t.Errorf("code %v, want EIO", code)
	}
	if state == "" && !strings.Contains(err.Error(), "postgres") {
		t.Errorf("error %v carries neither SQLSTATE nor context", err)
	}
	if c.IsValid() {
		t.Error("connection valid after the server stopped")
	}
}

func TestFromPool(t *testing.T) {
	d := dsn(t)
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, d+"&pool_max_conns=2")
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	ctr, err := postgres.FromPool(pool, postgres.Config{})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		conn, err := ctr.Connect(ctx)
		if err != nil {
			t.Fatal(err)
		}
		_, recs, err := readAll(ctx, conn.(*postgres.Conn), &driver.Request{SQL: "SELECT 7::int8"})
		if err != nil {
			t.Fatal(err)
		}
		release(recs)
		if pool.Stat().AcquiredConns() != 1 {
			t.Fatalf("acquired %d", pool.Stat().AcquiredConns())
		}
		conn.Close()
		if st := pool.Stat(); st.AcquiredConns() != 0 || st.TotalConns() != 1 {
			t.Fatalf("after Close: acquired %d total %d", st.AcquiredConns(), st.TotalConns())
		}
	}
	// A connection broken by a terminated backend is dropped, not reused.
	conn, _ := ctr.Connect(ctx)
	pc := conn.(*postgres.Conn)
	pid := pc.PgConn().PID()
	admin(t, d, "SELECT pg_terminate_backend($1::int)::text", fmt.Sprint(pid))
	if _, _, err := readAll(ctx, pc, &driver.Request{SQL: "SELECT 1"}); err == nil {
		t.Fatal("query on a terminated backend succeeded")
	}
	if pc.IsValid() {
		t.Fatal("terminated connection reports valid")
	}
	conn.Close()
	conn, err = ctr.Connect(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if conn.(*postgres.Conn).PgConn().PID() == pid {
		t.Fatal("the pool handed out the broken connection again")
	}
	_, recs, err := readAll(ctx, conn.(*postgres.Conn), &driver.Request{SQL: "SELECT 8::int8"})
	if err != nil {
		t.Fatal(err)
	}
	release(recs)
}

// pgFactory streams each StreamSpec from a real query through
// async.Produce, on a connection of its own whose batches come from
// spec.Alloc.
func pgFactory(d string) asynctest.ProducerFactory {
	return asynctest.Blocking(func(ctx context.Context, h async.Handler, spec asynctest.StreamSpec) error {
		pc, err := pgconn.ParseConfig(d)
		if err != nil {
			return err
		}
		ctr, err := postgres.NewConnector(pc, postgres.Config{Allocator: spec.Alloc})
		if err != nil {
			return err
		}
		conn, err := ctr.Connect(ctx)
		if err != nil {
			return err
		}
		defer conn.Close()
		rows := max(spec.Rows, 1)
		n := spec.Batches * rows
		var sql string
		switch spec.Kind {
		case asynctest.Finite:
			sql = fmt.Sprintf("SELECT g::int8 FROM generate_series(1, %d) g", n)
		case asynctest.Endless:
			sql = "SELECT generate_series(1, 1000000000000)::int8 AS g"
		case asynctest.Stalled:
			sql = "SELECT pg_sleep(600)::text"
		case asynctest.FailAfter:
			sql = fmt.Sprintf("SELECT CASE WHEN g <= %d THEN g ELSE 1/(g-g) END::int8 FROM generate_series(1, %d) g", n, n+1)
		case asynctest.FailSchema:
			sql = "SELEC 1"
		}
		src, err := conn.Query(ctx, &driver.Request{SQL: sql, BatchRows: int64(rows), BatchBytes: 16 << 20})
		if err != nil {
			return err
		}
		return async.Produce(ctx, h, src, async.ProduceOptions{})
	})
}

func TestConformance(t *testing.T) {
	asynctest.RunProducerChecks(t, pgFactory(dsn(t)))
}

// TestRandomCancel cancels streams at random points, a few hundred times,
// on one connection, through Produce and a Reader: each time the stream
// ends, no Arrow memory is left and the connection stays usable.
func TestRandomCancel(t *testing.T) {
	d := dsn(t)
	c, mem := connect(t, d, postgres.Config{})
	rng := rand.New(rand.NewPCG(1, 2))
	iters := 300
	if testing.Short() {
		iters = 50
	}
	for i := 0; i < iters; i++ {
		args := []any(nil)
		sql := "SELECT generate_series(1, 100000000)::int8 AS g"
		if i%2 == 1 {
			sql += " WHERE $1"
			args = []any{true}
		}
		src, err := c.Query(context.Background(), &driver.Request{SQL: sql, Args: args, BatchRows: int64(1 + rng.IntN(500)), BatchBytes: 1 << 20})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		r := async.NewReader(async.ReaderOptions{Window: 1 + rng.IntN(4)})
		st := async.Start(ctx, r, src, async.ProduceOptions{})
		take := rng.IntN(5)
		for k := 0; k < take; k++ {
			b, err := r.Next(context.Background())
			if err != nil {
				t.Fatalf("iter %d: %v", i, err)
			}
			b.Release()
		}
		switch rng.IntN(3) {
		case 0:
			cancel()
		case 1:
			r.Close()
		default:
			// A Next whose ctx has ended makes the Reader cancel the producer.
			dead, kill := context.WithCancel(context.Background())
			kill()
			if _, err := r.Next(dead); !errors.Is(err, context.Canceled) {
				t.Fatalf("iter %d: Next(dead ctx): %v", i, err)
			}
		}
		err = st.Wait()
		if err != nil && !errors.Is(err, context.Canceled) {
			t.Fatalf("iter %d: Produce: %v", i, err)
		}
		r.Close()
		cancel()
		if !c.IsValid() {
			t.Fatalf("iter %d: connection invalid after cancel: %s", i, c.DebugState())
		}
	}
	mem.AssertSize(t, 0)
	_, recs, err := readAll(context.Background(), c, &driver.Request{SQL: "SELECT 5::int8"})
	if err != nil {
		t.Fatal(err)
	}
	release(recs)
}

func TestProduceReader(t *testing.T) {
	c, _ := connect(t, dsn(t), postgres.Config{})
	src, err := c.Query(context.Background(), &driver.Request{SQL: "SELECT g::int8 FROM generate_series(1, 100000) g", BatchBytes: 64 << 10})
	if err != nil {
		t.Fatal(err)
	}
	r := async.NewReader(async.ReaderOptions{Window: 2})
	st := async.Start(context.Background(), r, src, async.ProduceOptions{})
	var rows, sum, batches int64
	for b, err := range r.All(context.Background()) {
		if err != nil {
			t.Fatal(err)
		}
		batches++
		rows += b.NumRows
		a := b.Record.Column(0).(*array.Int64)
		for i := 0; i < a.Len(); i++ {
			sum += a.Value(i)
		}
		b.Release()
	}
	if err := st.Wait(); err != nil {
		t.Fatal(err)
	}
	if rows != 100000 || sum != 100000*100001/2 || batches < 5 {
		t.Fatalf("rows %d sum %d batches %d", rows, sum, batches)
	}
	_ = io.EOF
}

// A pool configured with Tune gets the socket-level COPY reader, and reads
// the same batches as an untuned pool and as a connection Volley opens.
func TestFromTunedPool(t *testing.T) {
	d := dsn(t)
	ctx := context.Background()
	const q = "SELECT g, g::text AS t, (g * 1.5)::numeric(12,2) AS n, CASE WHEN g % 7 = 0 THEN NULL ELSE g END AS z FROM generate_series(1, 30000) g"
	read := func(conn driver.Conn) string {
		_, recs, err := readAll(ctx, conn.(*postgres.Conn), &driver.Request{SQL: q, BatchRows: 1000})
		if err != nil {
			t.Fatal(err)
		}
		defer release(recs)
		if len(recs) != 30 {
			t.Fatalf("%d batches, want 30", len(recs))
		}
		var sb strings.Builder
		for _, r := range recs {
			for _, c := range r.Columns() {
				fmt.Fprintln(&sb, c)
			}
		}
		return sb.String()
	}
	var outs []string
	for _, tuned := range []bool{false, true} {
		cfg, err := pgxpool.ParseConfig(d)
		if err != nil {
			t.Fatal(err)
		}
		if tuned {
			postgres.Tune(&cfg.ConnConfig.Config)
			postgres.Tune(&cfg.ConnConfig.Config) // twice is harmless
		}
		pool, err := pgxpool.NewWithConfig(ctx, cfg)
		if err != nil {
			t.Fatal(err)
		}
		ctr, err := postgres.FromPool(pool, postgres.Config{})
		if err != nil {
			t.Fatal(err)
		}
		conn, err := ctr.Connect(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if got := conn.(*postgres.Conn).FastCopy(); got != tuned {
			t.Fatalf("tuned %v: FastCopy %v", tuned, got)
		}
		outs = append(outs, read(conn))
		conn.Close()
		pool.Close()
	}
	own, _ := connect(t, d, postgres.Config{})
	if !own.FastCopy() {
		t.Fatal("a connection Volley opened is not tuned")
	}
	outs = append(outs, read(own))
	if outs[0] != outs[1] || outs[0] != outs[2] {
		t.Fatal("tuned and untuned connections read different data")
	}
}

// A1: a consumer that requests exactly as many batches as the result has,
// and never more, still gets end of stream and release (the source tells
// the runtime its end through async.EndNotifier): on the COPY path whether
// the last batch is full or not, on the extended path when it is partial.
func TestEndWithoutFurtherDemand(t *testing.T) {
	d := dsn(t)
	for _, tc := range []struct {
		rows int
		args []any // with a parameter: the extended path, whose end is known after a partial batch
	}{{3000, nil}, {2500, nil}, {2500, []any{int64(0)}}} {
		rows := tc.rows
		c, _ := connect(t, d, postgres.Config{})
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		sql := fmt.Sprintf("SELECT g::int8 FROM generate_series(1, %d) g", rows)
		if tc.args != nil {
			sql += " WHERE g > $1"
		}
		src, err := c.Query(ctx, &driver.Request{SQL: sql, Args: tc.args, BatchRows: 1000})
		if err != nil {
			t.Fatal(err)
		}
		h := &asynctest.Handler{InitialRequest: 3}
		if err := async.Produce(ctx, h, src, async.ProduceOptions{}); err != nil {
			t.Fatalf("%d rows: Produce = %v", rows, err)
		}
		cancel()
		if n := h.Count(asynctest.EvTask); n != 3 || h.Count(asynctest.EvEnd) != 1 || h.Count(asynctest.EvRelease) != 1 {
			t.Errorf("%d rows: %d tasks, %d ends, %d releases; want 3, 1, 1", rows, n, h.Count(asynctest.EvEnd), h.Count(asynctest.EvRelease))
		}
		if v := h.Violations(); len(v) > 0 {
			t.Errorf("%d rows: %v", rows, v)
		}
		if _, n := h.Extracted(); n != int64(rows) {
			t.Errorf("%d rows: %d extracted", rows, n)
		}
	}
}
