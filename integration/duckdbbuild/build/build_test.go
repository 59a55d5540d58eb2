package build

import (
	"context"
	"os"
	"path/filepath"
	"testing"
)

func TestBuildAndStamp(t *testing.T) {
	ctx := t.Context()
	mod, err := ModuleDir(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	if Current(out, mod) {
		t.Fatal("an empty directory is current")
	}
	p, err := Build(ctx, Options{Out: out, ModuleDir: mod})
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(p)
	if err != nil || st.Size() < 10<<20 {
		t.Fatalf("library %s: %v, %d bytes", p, err, st.Size())
	}
	if !Current(out, mod) {
		t.Fatal("a fresh build is not current")
	}
	// A second Build leaves the current library alone.
	if _, err := Build(ctx, Options{Out: out, ModuleDir: mod}); err != nil {
		t.Fatal(err)
	}
	st2, _ := os.Stat(p)
	if !st2.ModTime().Equal(st.ModTime()) {
		t.Error("an up-to-date library was rebuilt")
	}
	// A stamp from another recipe or module makes it out of date.
	if err := os.WriteFile(p+stampSuffix, []byte("other\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if Current(out, mod) {
		t.Fatal("a library with a foreign stamp is current")
	}
	// No temporary files are left behind.
	left, _ := filepath.Glob(filepath.Join(out, ".build-*"))
	if len(left) != 0 {
		t.Errorf("left behind: %v", left)
	}
}

func TestBuildErrors(t *testing.T) {
	if _, err := Build(context.Background(), Options{}); err == nil {
		t.Error("Build without Out succeeded")
	}
	_, err := Build(context.Background(), Options{Out: t.TempDir(), ModuleDir: t.TempDir()})
	if err == nil {
		t.Error("Build from a directory without the libraries succeeded")
	}
}
