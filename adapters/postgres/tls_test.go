package postgres_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/volleyhq/volley/adapters/postgres"
	"github.com/volleyhq/volley/driver"
	"github.com/volleyhq/volley/integration/pgtest"
)

// The COPY fast path sits under pgconn's message decoder and leaves the
// TLS connection alone: over TLS with SCRAM-SHA-256-PLUS and
// channel_binding=require (which needs pgconn to see its *tls.Conn), a
// connection Volley opens is tuned and reads a multi-batch COPY result
// exactly.
func TestTLSChannelBindingWithFastCopy(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	srv, err := pgtest.Start(ctx, pgtest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()

	// A self-signed certificate and an hba that accepts TCP only over TLS
	// with SCRAM, written into the data directory as its owner's.
	dir := srv.DataDir()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "127.0.0.1"},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, NotBefore: time.Now().Add(-time.Hour),
		NotAfter: time.Now().Add(time.Hour), KeyUsage: x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	owner := st.Sys().(*syscall.Stat_t)
	for name, data := range map[string][]byte{
		"server.crt":  pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		"server.key":  pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}),
		"pg_hba.conf": []byte("local all all trust\nhostssl all all 127.0.0.1/32 scram-sha-256\nhostnossl all all 127.0.0.1/32 reject\n"),
	} {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(p, int(owner.Uid), int(owner.Gid)); err != nil {
			t.Fatal(err)
		}
	}
	const password = "s3cret-for-tls-test"
	local, err := pgconn.Connect(ctx, srv.UnixDSN())
	if err != nil {
		t.Fatal(err)
	}
	defer local.Close(context.Background())
	for _, sql := range []string{"ALTER USER postgres PASSWORD '" + password + "'", "ALTER SYSTEM SET ssl = on", "SELECT pg_reload_conf()"} {
		if _, err := local.Exec(ctx, sql).ReadAll(); err != nil {
			t.Fatal(err)
		}
	}
	for {
		// The reload is asynchronous: wait until the server says ssl is on.
		res := local.ExecParams(ctx, "SHOW ssl", nil, nil, nil, nil).Read()
		if res.Err != nil {
			t.Fatal(res.Err)
		}
		if string(res.Rows[0][0]) == "on" {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatal("ssl never came on")
		case <-time.After(20 * time.Millisecond):
		}
	}

	tcp := fmt.Sprintf("postgres://postgres:%s@127.0.0.1:%d/postgres?sslmode=require&channel_binding=require", password, srv.Port())
	c, err := postgres.Driver{}.Open(ctx, tcp)
	if err != nil {
		t.Fatalf("TLS connect with channel binding: %v", err)
	}
	defer c.Close()
	pc := c.(*postgres.Conn)
	if !pc.FastCopy() {
		t.Fatal("the TLS connection is not tuned")
	}
	if !strings.HasPrefix(fmt.Sprintf("%T", pc.PgConn().Conn()), "*tls.") {
		t.Fatalf("pgconn's net.Conn is %T, not the TLS connection", pc.PgConn().Conn())
	}
	_, recs, err := readAll(ctx, pc, &driver.Request{SQL: "SELECT g::int8, repeat('x', g % 50) FROM generate_series(1, 20000) g", BatchRows: 3000})
	if err != nil {
		t.Fatal(err)
	}
	defer release(recs)
	var want int64 = 1
	for _, r := range recs {
		ids := r.Column(0).(*array.Int64)
		txt := r.Column(1).(*array.String)
		for i := 0; i < ids.Len(); i++ {
			if ids.Value(i) != want || len(txt.Value(i)) != int(want%50) {
				t.Fatalf("row %d: %d, %d chars", want, ids.Value(i), len(txt.Value(i)))
			}
			want++
		}
	}
	if want != 20001 || len(recs) != 7 {
		t.Fatalf("%d rows in %d batches", want-1, len(recs))
	}
	// The server agrees the session is encrypted.
	res := pc.PgConn().ExecParams(ctx, "SELECT ssl::text FROM pg_stat_ssl WHERE pid = pg_backend_pid()", nil, nil, nil, nil).Read()
	if res.Err != nil || len(res.Rows) != 1 || string(res.Rows[0][0]) != "true" {
		t.Fatalf("pg_stat_ssl: %v %q", res.Err, res.Rows)
	}
}
