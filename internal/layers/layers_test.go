package layers

import (
	"encoding/json"
	"io"
	"os/exec"
	"strings"
	"testing"
)

const mod = "github.com/volleyhq/volley"

type pkg struct {
	ImportPath   string
	Imports      []string
	TestImports  []string
	XTestImports []string
	CgoFiles     []string
}

// rule says what a layer must not import (prefix match on import paths),
// and whether it may use cgo.
type rule struct {
	layer     string // package path prefix, relative to the module
	forbidden []string
	cgo       bool
}

var sqlish = []string{"database/sql", "github.com/jackc/", "github.com/apache/arrow-adbc/"}

var rules = []rule{
	{layer: "async/cabi", cgo: true, forbidden: []string{mod + "/cmd/", mod + "/integration"}},
	{layer: "async", forbidden: append([]string{"C", mod + "/devicebuf", mod + "/driver", mod + "/adapters",
		mod + "/async/cabi", mod + "/cmd/", mod + "/integration", "github.com/apache/arrow-go/v18/arrow/cdata"}, sqlish...)},
	{layer: "devicebuf", forbidden: append([]string{"C", mod + "/driver", mod + "/adapters", mod + "/async/cabi",
		mod + "/cmd/", mod + "/integration"}, sqlish...)},
	{layer: "driver", forbidden: append([]string{"C", mod + "/adapters", mod + "/async/cabi", mod + "/cmd/",
		mod + "/integration"}, sqlish...)},
	{layer: "adapters", forbidden: []string{"C", mod + "/devicebuf", mod + "/async/cabi", mod + "/cmd/", mod + "/integration/"}},
}

// ruleFor returns the most specific rule for a package.
func ruleFor(path string) (rule, bool) {
	rel := strings.TrimPrefix(strings.TrimPrefix(path, mod), "/")
	for _, r := range rules {
		if rel == r.layer || strings.HasPrefix(rel, r.layer+"/") {
			return r, true
		}
	}
	return rule{}, false
}

func forbidden(r rule, imp string) bool {
	for _, f := range r.forbidden {
		if imp == f || strings.HasPrefix(imp, strings.TrimSuffix(f, "/")+"/") || (strings.HasSuffix(f, "/") && strings.HasPrefix(imp, f)) {
			return true
		}
	}
	return false
}

func listPackages(t *testing.T) []pkg {
	t.Helper()
	cmd := exec.Command("go", "list", "-json", mod+"/...")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	var pkgs []pkg
	dec := json.NewDecoder(strings.NewReader(string(out)))
	for {
		var p pkg
		if err := dec.Decode(&p); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		pkgs = append(pkgs, p)
	}
	return pkgs
}

// TestLayering checks every package's imports against ARCHITECTURE.md:
// async imports no cgo, no SQL and no devicebuf; devicebuf knows no SQL;
// driver knows no adapter; adapters know nothing of devices; only
// async/cabi (and test harnesses under integration/) use cgo.
func TestLayering(t *testing.T) {
	pkgs := listPackages(t)
	if len(pkgs) < 3 {
		t.Fatalf("go list found %d packages", len(pkgs))
	}
	checked := 0
	for _, p := range pkgs {
		r, ok := ruleFor(p.ImportPath)
		if !ok {
			continue
		}
		checked++
		if len(p.CgoFiles) > 0 && !r.cgo {
			t.Errorf("%s uses cgo (%v); only async/cabi may", p.ImportPath, p.CgoFiles)
		}
		for _, imp := range p.Imports {
			if forbidden(r, imp) {
				t.Errorf("%s imports %s, which its layer (%s) must not", p.ImportPath, imp, r.layer)
			}
		}
	}
	if checked == 0 {
		t.Fatal("no package matched a layering rule")
	}
}

func TestRuleMatching(t *testing.T) {
	// The checker itself must be able to fail.
	r, _ := ruleFor(mod + "/async")
	for _, bad := range []string{"C", mod + "/devicebuf", "github.com/jackc/pgx/v5", "database/sql"} {
		if !forbidden(r, bad) {
			t.Errorf("async may import %s by the rules; it must not", bad)
		}
	}
	if forbidden(r, "github.com/apache/arrow-go/v18/arrow") {
		t.Error("async may not import arrow by the rules; it must")
	}
	if r, _ := ruleFor(mod + "/async/cabi"); !r.cgo {
		t.Error("async/cabi matched the async rule")
	}
	if r, _ := ruleFor(mod + "/adapters/postgres"); !forbidden(r, mod+"/devicebuf") {
		t.Error("adapters may import devicebuf by the rules")
	}
}
