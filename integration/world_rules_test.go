package integration

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
)

// changesFile is where the world's state is changed; nowhere else.
const changesFile = "world_changes_test.go"

// sharedSetters change what every test shares (see world_changes_test.go);
// called on the world (an expression starting with w.), they belong in
// changesFile. Setters of what a test makes itself (AddUser, AddRole,
// SetRoleTrust on its own role, JoinCluster on its own front) are not
// listed: the check after each test catches a change to anything that
// existed before it.
var sharedSetters = []string{
	"SetClockOffset", "SetSessionDuration", "RotateInstanceCredentials", "InjectFault", "ClearFault",
	"SetInstanceProfile", "SetContainerCredentials", "SetRolePolicy", "SetIAMAuth", "SetIAMUser",
	"JoinCluster", "IsolateProcessEnv", "UseInProcess", "FailNextVerifies", "SetVerifyRate",
}

// envChangers change the process environment for good; t.Setenv (and
// unsetEnv) undo their change.
var envChangers = []string{"Setenv", "Unsetenv", "Clearenv", "Chdir"}

// TestWorldRules: every test of this package enters the world first
// (w.enter), no top-level test runs in parallel, and shared state is
// changed only through the helpers that undo the change. See
// world_changes_test.go.
func TestWorldRules(t *testing.T) {
	w.enter(t)
	files, err := filepath.Glob("*_test.go")
	if err != nil || len(files) == 0 {
		t.Fatalf("no test files (%v)", err)
	}
	fset := token.NewFileSet()
	var problems []string
	for _, name := range files {
		f, err := parser.ParseFile(fset, name, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		problems = append(problems, worldRuleViolations(fset, filepath.Base(name), f)...)
	}
	for _, p := range problems {
		t.Error(p)
	}
}

// TestWorldRulesCatchViolations: the rules' checker finds each kind of
// violation, and passes code that keeps them.
func TestWorldRulesCatchViolations(t *testing.T) {
	w.enter(t)
	const bad = `package integration
func TestNoEnter(t *testing.T) { startProxy(t) }
func TestEnterLate(t *testing.T) { startProxy(t); w.enter(t) }
func TestParallel(t *testing.T) {
	w.enter(t)
	t.Parallel()
}
func TestSetters(t *testing.T) {
	w.enter(t)
	w.aws.AWS.InjectFault(emulator.FaultSTS, emulator.Throttling())
	w.front.SetIAMAuth(false)
	defer w.aws.AWS.SetClockOffset(0)
	os.Setenv("AWS_REGION", "x")
}
func helper() { os.Unsetenv("AWS_REGION") }
`
	const good = `package integration
func TestGood(t *testing.T) {
	w.enter(t)
	w.setIAMAuth(t, w.front, false)
	front.JoinCluster("c", "cluster-X")
	t.Run("engines", func(t *testing.T) { t.Parallel() })
	t.Setenv("AWS_REGION", "x")
}
func TestMain(m *testing.M) { os.Exit(m.Run()) }
func Testing(t *testing.T) {}
func BenchmarkX(b *testing.B) {}
`
	fset := token.NewFileSet()
	check := func(name, src string) []string {
		f, err := parser.ParseFile(fset, name, src, 0)
		if err != nil {
			t.Fatal(err)
		}
		return worldRuleViolations(fset, name, f)
	}
	got := check("bad_test.go", bad)
	for _, want := range []string{
		"bad_test.go:2:6: TestNoEnter does not start with w.enter(t)",
		"bad_test.go:3:6: TestEnterLate does not start with w.enter(t)",
		"bad_test.go:6:2: t.Parallel",
		"bad_test.go:10:2: w.aws.AWS.InjectFault",
		"bad_test.go:11:2: w.front.SetIAMAuth",
		"bad_test.go:12:8: w.aws.AWS.SetClockOffset",
		"bad_test.go:13:2: os.Setenv",
		"bad_test.go:15:17: os.Unsetenv",
	} {
		if !slices.ContainsFunc(got, func(p string) bool { return strings.HasPrefix(p, want) }) {
			t.Errorf("no violation %q among:\n%s", want, strings.Join(got, "\n"))
		}
	}
	if len(got) != 8 {
		t.Errorf("%d violations, want 8:\n%s", len(got), strings.Join(got, "\n"))
	}
	if got := check("good_test.go", good); len(got) != 0 {
		t.Errorf("violations in code that keeps the rules:\n%s", strings.Join(got, "\n"))
	}
	if got := check(changesFile, "package integration\nfunc f() { w.aws.AWS.ClearFault(); os.Unsetenv(\"X\") }\n"); len(got) != 0 {
		t.Errorf("violations in %s, where changes belong:\n%s", changesFile, strings.Join(got, "\n"))
	}
}

// worldRuleViolations lists the file's breaches of the world's rules,
// each with its position.
func worldRuleViolations(fset *token.FileSet, name string, f *ast.File) []string {
	var out []string
	at := func(n ast.Node, format string, args ...any) {
		out = append(out, fmt.Sprintf("%s: %s", fset.Position(n.Pos()), fmt.Sprintf(format, args...)))
	}
	for _, d := range f.Decls {
		fn, ok := d.(*ast.FuncDecl)
		if !ok || fn.Recv != nil || !isTestFunc(fn) {
			continue
		}
		if !startsWithEnter(fn) {
			at(fn.Name, "%s does not start with w.enter(t): every test must, so that a change it leaves in the shared world fails it", fn.Name.Name)
		}
		// Subtests may run in parallel with each other (the helpers
		// that change the world refuse to run in them: see serial); a
		// top-level test may not, the world being one.
		ast.Inspect(fn.Body, func(n ast.Node) bool {
			if _, ok := n.(*ast.FuncLit); ok {
				return false
			}
			if call, ok := n.(*ast.CallExpr); ok {
				if sel, ok := call.Fun.(*ast.SelectorExpr); ok && sel.Sel.Name == "Parallel" && len(call.Args) == 0 {
					at(call, "%s: top-level tests share one world and run one at a time", exprText(sel))
				}
			}
			return true
		})
	}
	ast.Inspect(f, func(n ast.Node) bool {
		call, ok := n.(*ast.CallExpr)
		if !ok {
			return true
		}
		sel, ok := call.Fun.(*ast.SelectorExpr)
		if !ok {
			return true
		}
		method := sel.Sel.Name
		switch {
		case name == changesFile:
		case slices.Contains(sharedSetters, method) && rootIdent(sel.X) == "w":
			at(call, "%s changes the shared world: use the helper in %s that undoes it", exprText(sel), changesFile)
		case slices.Contains(envChangers, method) && isIdent(sel.X, "os"):
			at(call, "%s changes the process environment for every later test: use t.Setenv or unsetEnv", exprText(sel))
		}
		return true
	})
	return out
}

// isTestFunc reports whether fn is a test go test runs: TestXxx (Xxx not
// starting with a lower-case letter) taking one *testing.T.
func isTestFunc(fn *ast.FuncDecl) bool {
	name := fn.Name.Name
	if !strings.HasPrefix(name, "Test") || name == "TestMain" {
		return false
	}
	if rest := name[len("Test"):]; rest != "" {
		if r, _ := utf8.DecodeRuneInString(rest); unicode.IsLower(r) {
			return false
		}
	}
	params := fn.Type.Params.List
	if len(params) != 1 || len(params[0].Names) > 1 {
		return false
	}
	star, ok := params[0].Type.(*ast.StarExpr)
	return ok && exprText(star.X) == "testing.T"
}

// startsWithEnter reports whether fn's first statement is w.enter(t),
// t being its parameter.
func startsWithEnter(fn *ast.FuncDecl) bool {
	if fn.Body == nil || len(fn.Body.List) == 0 || len(fn.Type.Params.List[0].Names) == 0 {
		return false
	}
	stmt, ok := fn.Body.List[0].(*ast.ExprStmt)
	if !ok {
		return false
	}
	call, ok := stmt.X.(*ast.CallExpr)
	if !ok || len(call.Args) != 1 || exprText(call.Fun) != "w.enter" {
		return false
	}
	return isIdent(call.Args[0], fn.Type.Params.List[0].Names[0].Name)
}

// rootIdent is the identifier an expression like w.aws.AWS starts
// with, "" if none.
func rootIdent(e ast.Expr) string {
	for {
		switch x := e.(type) {
		case *ast.Ident:
			return x.Name
		case *ast.SelectorExpr:
			e = x.X
		case *ast.CallExpr:
			e = x.Fun
		case *ast.ParenExpr:
			e = x.X
		case *ast.IndexExpr:
			e = x.X
		default:
			return ""
		}
	}
}

func isIdent(e ast.Expr, name string) bool {
	id, ok := e.(*ast.Ident)
	return ok && id.Name == name
}

// exprText renders a selector chain (w.aws.AWS.InjectFault) for messages.
func exprText(e ast.Expr) string {
	switch x := e.(type) {
	case *ast.Ident:
		return x.Name
	case *ast.SelectorExpr:
		return exprText(x.X) + "." + x.Sel.Name
	case *ast.CallExpr:
		return exprText(x.Fun) + "(...)"
	case *ast.ParenExpr:
		return "(" + exprText(x.X) + ")"
	default:
		return fmt.Sprintf("%T", e)
	}
}
