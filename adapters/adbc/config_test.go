package adbc_test

import (
	"context"
	"errors"
	"maps"
	"strings"
	"testing"

	goadbc "github.com/apache/arrow-adbc/go/adbc"

	"github.com/volleyhq/volley/adapters/adbc"
	"github.com/volleyhq/volley/async"
	"github.com/volleyhq/volley/driver"
)

func TestParseDSN(t *testing.T) {
	cases := []struct {
		dsn  string
		want adbc.Config
	}{
		{`driver=/lib/x.so;entrypoint=duckdb_adbc_init;path=/tmp/x.db`,
			adbc.Config{Library: "/lib/x.so", EntryPoint: "duckdb_adbc_init", Options: map[string]string{"path": "/tmp/x.db"}}},
		{`driver=/a\;b\=c\\d.so;uri=grpc://h:1/?a\=1\;b\=2;`,
			adbc.Config{Library: `/a;b=c\d.so`, Options: map[string]string{"uri": "grpc://h:1/?a=1;b=2"}}},
		{`driver=x;volley.partitions=4;volley.unordered=true;statement.adbc.rpc.result_queue_size=1;k=`,
			adbc.Config{Library: "x", Partitions: 4, Unordered: true,
				StatementOptions: map[string]string{"adbc.rpc.result_queue_size": "1"}, Options: map[string]string{"k": ""}}},
		{`;;driver=x=y; spaced key = v `,
			adbc.Config{Library: "x=y", Options: map[string]string{" spaced key ": " v "}}},
		{`driver=\x\y`, adbc.Config{Library: "xy"}},
	}
	for _, tc := range cases {
		got, err := adbc.ParseDSN(tc.dsn)
		if err != nil {
			t.Errorf("ParseDSN(%q): %v", tc.dsn, err)
			continue
		}
		if !sameConfig(got, tc.want) {
			t.Errorf("ParseDSN(%q) = %+v, want %+v", tc.dsn, got, tc.want)
		}
	}
	bad := []string{``, `path=x`, `driver`, `driver=x;novalue`, `=v;driver=x`, `driver=x;driver=y`,
		`driver=x\`, `driver=x;volley.partitions=-1`, `driver=x;volley.partitions=many`, `driver=x;volley.unordered=maybe`}
	for _, dsn := range bad {
		if _, err := adbc.ParseDSN(dsn); !errors.Is(err, async.ErrInvalid) {
			t.Errorf("ParseDSN(%q) = %v, want an ErrInvalid error", dsn, err)
		}
	}
}

func sameConfig(a, b adbc.Config) bool {
	eq := func(x, y map[string]string) bool { return len(x) == len(y) && maps.Equal(x, y) }
	return a.Library == b.Library && a.EntryPoint == b.EntryPoint && a.Partitions == b.Partitions &&
		a.Unordered == b.Unordered && eq(a.Options, b.Options) && eq(a.StatementOptions, b.StatementOptions)
}

func TestConfigRedaction(t *testing.T) {
	c := adbc.Config{Library: "/x.so", Options: map[string]string{
		"password":                 "pw-value-1",
		"adbc.flight.sql.auth.tok": "tok-value-2",
		"Client_Secret":            "sec-value-3",
		"uri":                      "postgresql://user:pw-value-4@db:5432/x",
		"path":                     "/tmp/ok.db",
	}}
	s := c.String()
	for _, secret := range []string{"pw-value-1", "tok-value-2", "sec-value-3", "pw-value-4"} {
		if strings.Contains(s, secret) {
			t.Errorf("String() leaks %s: %s", secret, s)
		}
	}
	for _, keep := range []string{"/tmp/ok.db", "user", "db:5432", "REDACTED"} {
		if !strings.Contains(s, keep) {
			t.Errorf("String() lacks %s: %s", keep, s)
		}
	}
	// Driver messages are scrubbed of secret values too.
	err := adbc.MapError("open", goadbc.Error{Code: goadbc.StatusUnauthenticated, Msg: "bad password pw-value-1 for user"}, &c)
	if strings.Contains(err.Error(), "pw-value-1") {
		t.Errorf("MapError leaks: %v", err)
	}
}

func TestFormatDSNRoundTrip(t *testing.T) {
	c := adbc.Config{Library: `C:\odd;path=x.so`, EntryPoint: "e=1", Partitions: 2, Unordered: true,
		Options:          map[string]string{"a;b": `c=d\e`, "uri": "x://y/?q=1;r=2"},
		StatementOptions: map[string]string{"s": ";"}}
	got, err := adbc.ParseDSN(adbc.FormatDSN(c))
	if err != nil || !sameConfig(got, c) {
		t.Fatalf("round trip: %+v, %v", got, err)
	}
}

func FuzzParseDSN(f *testing.F) {
	for _, s := range []string{`driver=/x.so;entrypoint=e;path=:memory:`, `driver=a\;b;k=\=\\`, `;;=`, `driver=x;volley.partitions=3`, `\`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, dsn string) {
		c, err := adbc.ParseDSN(dsn)
		if err != nil {
			if !errors.Is(err, async.ErrInvalid) {
				t.Fatalf("error %v does not wrap ErrInvalid", err)
			}
			return
		}
		again, err := adbc.ParseDSN(adbc.FormatDSN(c))
		if err != nil {
			t.Fatalf("FormatDSN(%+v) = %q does not parse: %v", c, adbc.FormatDSN(c), err)
		}
		if !sameConfig(c, again) {
			t.Fatalf("round trip changed %+v into %+v", c, again)
		}
		_ = c.String()
	})
}

func TestMapError(t *testing.T) {
	cases := []struct {
		err  error
		code async.Errno
	}{
		{goadbc.Error{Code: goadbc.StatusInvalidArgument, Msg: "m"}, async.EINVAL},
		{&goadbc.Error{Code: goadbc.StatusInvalidState, Msg: "m"}, async.EINVAL},
		{goadbc.Error{Code: goadbc.StatusNotFound}, async.ENOENT},
		{&goadbc.Error{Code: goadbc.StatusNotImplemented}, async.ENOTSUP},
		{goadbc.Error{Code: goadbc.StatusCancelled}, async.ECANCELED},
		{goadbc.Error{Code: goadbc.StatusTimeout}, async.ETIMEDOUT},
		{goadbc.Error{Code: goadbc.StatusIO}, async.EIO},
		{goadbc.Error{Code: goadbc.StatusUnauthenticated}, async.EPERM},
		{goadbc.Error{Code: goadbc.StatusUnauthorized}, async.EPERM},
		{goadbc.Error{Code: goadbc.StatusUnknown}, async.EIO},
		{context.Canceled, async.ECANCELED},
	}
	for _, tc := range cases {
		err := adbc.MapError("op", tc.err, nil)
		if got := async.CodeOf(err); got != tc.code {
			t.Errorf("MapError(%v) code %v, want %v", tc.err, got, tc.code)
		}
		var v goadbc.Error
		if _, isADBC := tc.err.(goadbc.Error); isADBC && !errors.As(err, &v) {
			t.Errorf("MapError(%v) hides the adbc.Error", tc.err)
		}
	}
	e := goadbc.Error{Code: goadbc.StatusInvalidData, Msg: "division by zero", VendorCode: 42, SqlState: [5]byte{'2', '2', '0', '1', '2'}}
	for _, in := range []error{e, &e} {
		var ae *async.Error
		if !errors.As(adbc.MapError("read", in, nil), &ae) {
			t.Fatal("not an *async.Error")
		}
		md := ae.Metadata
		if v, _ := md.GetValue(adbc.MetaSQLState); v != "22012" {
			t.Errorf("sqlstate %q", v)
		}
		if v, _ := md.GetValue(adbc.MetaVendorCode); v != "42" {
			t.Errorf("vendor code %q", v)
		}
		if v, _ := md.GetValue(adbc.MetaStatus); v != goadbc.StatusInvalidData.String() {
			t.Errorf("status %q", v)
		}
		if !errors.Is(ae, async.ErrInvalid) {
			t.Errorf("%v does not match ErrInvalid", ae)
		}
	}
}

// TestRegisteredDSN opens DuckDB through the registry with a DSN.
func TestRegisteredDSN(t *testing.T) {
	lib := duck(t).Config().Library
	dsn := adbc.FormatDSN(adbc.DuckDB(lib, ""))
	d := adbc.Driver{}
	conn, err := d.Open(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	res := mustQuery(t, conn, "SELECT 7 AS seven")
	if got := res.batches[0].Column(0).ValueStr(0); got != "7" {
		t.Errorf("got %s", got)
	}
	if err := conn.Close(); err != nil {
		t.Fatal(err)
	}
	if err := conn.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if !contains(driver.Drivers(), adbc.Name) {
		t.Errorf("%q not registered: %v", adbc.Name, driver.Drivers())
	}
}

func contains(xs []string, x string) bool {
	for _, v := range xs {
		if v == x {
			return true
		}
	}
	return false
}
