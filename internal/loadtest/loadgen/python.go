package loadgen

import (
	"bufio"
	"bytes"
	"context"
	_ "embed"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"time"
)

// stormPy runs one round of a C library kind; see its header.
//
//go:embed storm.py
var stormPy string

// pyJob is what storm.py reads on stdin.
type pyJob struct {
	Driver   string  `json:"driver"`
	Host     string  `json:"host"`
	Port     int     `json:"port"`
	User     string  `json:"user"`
	Password string  `json:"password,omitempty"`
	Database string  `json:"database"`
	CAFile   string  `json:"ca_file,omitempty"`
	Clients  int     `json:"clients"`
	Round    int     `json:"round"`
	Base     int64   `json:"base"`
	Limit    float64 `json:"limit"` // seconds
}

// pyClient is one line of storm.py's output.
type pyClient struct {
	Round   int     `json:"round"`
	Index   int     `json:"index"`
	Want    string  `json:"want"`
	Got     *string `json:"got"`
	Connect float64 `json:"connect"`
	Total   float64 `json:"total"`
	Error   string  `json:"error"`
	Hung    bool    `json:"hung"`
}

// pythonExit bounds the python process past the round's limit: it abandons
// hung threads and exits at the limit by itself, so only a wedged
// interpreter is killed here.
const pythonExit = 30 * time.Second

// pythonRound runs one round of a C library kind in one python3 process.
func pythonRound(ctx context.Context, s Storm, r int) ([]Client, error) {
	job, err := json.Marshal(pyJob{
		Driver: string(s.Kind), Host: s.Target.Host, Port: s.Target.Port, User: s.Target.User,
		Password: s.Target.Password, Database: s.Target.Database, CAFile: s.Target.CAFile,
		Clients: s.Clients, Round: r, Base: s.Base, Limit: s.Limit.Seconds(),
	})
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, s.Limit+pythonExit)
	defer cancel()
	cmd := exec.CommandContext(ctx, s.Python, "-c", stormPy)
	cmd.Stdin = bytes.NewReader(job)
	cmd.Env = clientEnv()
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	cmd.WaitDelay = 5 * time.Second
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("loadgen: start %s for %s clients: %w", s.Python, s.Kind, err)
	}
	out := make([]Client, 0, s.Clients)
	sc := bufio.NewScanner(stdout)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		var p pyClient
		if err := json.Unmarshal(sc.Bytes(), &p); err != nil {
			cmd.Process.Kill()
			cmd.Wait()
			return nil, fmt.Errorf("loadgen: %s output %q: %w", s.Kind, sc.Text(), err)
		}
		out = append(out, p.client(s.Limit))
	}
	waitErr := cmd.Wait()
	if len(out) != s.Clients {
		return nil, fmt.Errorf("loadgen: %s round %d: %d of %d clients reported (%v): %s", s.Kind, r+1, len(out), s.Clients, waitErr, tail(stderr.String()))
	}
	return out, nil
}

func (p pyClient) client(limit time.Duration) Client {
	c := Client{Round: p.Round, Index: p.Index, Want: p.Want,
		Connect: secs(p.Connect), Total: secs(p.Total)}
	if p.Got != nil {
		c.Got = *p.Got
	}
	switch {
	case p.Hung:
		c.Outcome, c.Err = Hung, fmt.Sprintf("no answer within %s; the thread was abandoned", limit)
	case p.Error != "":
		c.classify(fmt.Errorf("%s", p.Error), false, limit)
	default:
		c.classify(nil, false, limit)
	}
	return c
}

func secs(f float64) time.Duration { return time.Duration(f * float64(time.Second)) }

// clientEnv is the environment for client processes: this one's, without
// the variables libpq and libmariadb would read (PGSSLMODE, PGPASSWORD,
// MYSQL_PWD, ...), so a job's settings are the only ones.
func clientEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "PG") || strings.HasPrefix(kv, "MYSQL") || strings.HasPrefix(kv, "MARIADB") {
			continue
		}
		env = append(env, kv)
	}
	return env
}

// tail is the end of a process's stderr, for an error message.
func tail(s string) string {
	const keep = 2000
	if len(s) > keep {
		return "..." + s[len(s)-keep:]
	}
	return s
}
