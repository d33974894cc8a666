package localsrv

import (
	"os"
	"strings"
	"testing"
)

func TestLogRingKeepsTail(t *testing.T) {
	r := &LogRing{}
	line := strings.Repeat("x", 99) + "\n"
	for i := 0; i < 2*LogRingSize/len(line); i++ {
		_, _ = r.Write([]byte(line))
	}
	_, _ = r.Write([]byte("last line\n"))
	s := r.String()
	if len(s) != LogRingSize || !strings.HasSuffix(s, "last line\n") {
		t.Errorf("ring len %d, suffix %q", len(s), s[len(s)-20:])
	}
	if got := Tail(s, 2); !strings.HasSuffix(got, "\nlast line") || strings.Count(got, "\n") != 1 {
		t.Errorf("tail = %q", got)
	}
	big := strings.Repeat("y", LogRingSize+10)
	_, _ = r.Write([]byte(big))
	if r.String() != big[10:] {
		t.Error("oversized write not truncated to its tail")
	}
}

func TestCleanEnv(t *testing.T) {
	t.Setenv("LC_ALL", "de_DE.UTF-8")
	t.Setenv("LANG", "de_DE.UTF-8")
	t.Setenv("HOME", "/root")
	t.Setenv("MYSQL_PWD", "secret")
	t.Setenv("KEEP_ME", "1")
	env := strings.Join(CleanEnv("/home/srv", func(k string) bool { return strings.HasPrefix(k, "MYSQL") }), "\n") + "\n"
	for _, want := range []string{"LC_ALL=C\n", "LANG=C\n", "HOME=/home/srv\n", "KEEP_ME=1\n"} {
		if !strings.Contains(env, want) {
			t.Errorf("env lacks %q", want)
		}
	}
	for _, bad := range []string{"de_DE", "HOME=/root", "MYSQL_PWD"} {
		if strings.Contains(env, bad) {
			t.Errorf("env keeps %q", bad)
		}
	}
}

func TestAccountFileHelpersWithoutSwitch(t *testing.T) {
	a := CurrentAccount()
	dir := t.TempDir()
	if err := a.EnsureTraversable(dir); err != nil {
		t.Fatal(err)
	}
	if err := a.MkOwnedDir(dir+"/d", 0o700); err != nil {
		t.Fatal(err)
	}
	if err := a.WriteOwnedFile(dir+"/d/key", []byte("k"), 0o600); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(dir + "/d/key")
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("key: %v %v", err, fi.Mode())
	}
	base, made, err := MakeBaseDir("", "localsrv-test-")
	if err != nil || !made {
		t.Fatalf("MakeBaseDir: %q %v %v", base, made, err)
	}
	_ = os.RemoveAll(base)
	if _, err := FreePort(); err != nil {
		t.Error(err)
	}
}
