package localsrv

import (
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"
	"time"
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

func TestChildStopAndKill(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("needs Unix signals") // the servers this package starts run on Unix only
	}
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Fatalf("no sh on PATH: %v", err) // every Unix has one; its absence is a broken machine
	}
	start := func(script string) *Child {
		cmd := exec.Command(sh, "-c", script)
		cmd.SysProcAttr = CurrentAccount().SysProcAttr()
		c, err := StartChild(cmd)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}

	// Obeys SIGTERM: Stop returns nil promptly.
	c := start("sleep 60")
	if err := c.Stop(SigTerm(), 5*time.Second, nil); err != nil {
		t.Errorf("Stop of an obedient child: %v", err)
	}
	if gone, _ := c.Exited(); !gone {
		t.Error("child still running after Stop")
	}

	// Ignores SIGTERM: Stop kills it after the grace and says so.
	c = start("trap '' TERM; echo ready; sleep 60 & wait")
	time.Sleep(200 * time.Millisecond) // let the trap be installed
	begin := time.Now()
	if err := c.Stop(SigTerm(), 300*time.Millisecond, nil); err != ErrKilled {
		t.Errorf("Stop of a stubborn child = %v, want ErrKilled", err)
	}
	if d := time.Since(begin); d > 5*time.Second {
		t.Errorf("Stop took %v", d)
	}
	if gone, _ := c.Exited(); !gone {
		t.Error("child still running after Stop")
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
