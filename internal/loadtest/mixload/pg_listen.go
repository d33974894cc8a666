package mixload

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// endMarker is the last notification of a run; rolledBackPrefix starts
// the payload of notifications sent in transactions that roll back, which
// nobody may receive.
const (
	endMarker        = "end"
	rolledBackPrefix = "rolled-back:"
)

// notifications are what senders committed and what each listener got.
type notifications struct {
	mu        sync.Mutex
	counter   map[string]int    // per sender tag
	sentBy    map[string]uint32 // committed payload -> sender's backend pid
	listeners []*listenLog
}

// listenLog is one listener's record; only its listener writes it, and it
// is read once the listener has ended.
type listenLog struct {
	name       string
	got        map[string]int    // payload -> times received
	pids       map[string]uint32 // payload -> sender pid in the notification
	rolledBack int64             // notifications of rolled-back transactions received
	strange    []string          // other channels, unknown payloads
	sawEnd     bool
}

func newNotifications() *notifications {
	return &notifications{counter: map[string]int{}, sentBy: map[string]uint32{}}
}

func (n *notifications) addListener(name string) *listenLog {
	l := &listenLog{name: name, got: map[string]int{}, pids: map[string]uint32{}}
	n.mu.Lock()
	n.listeners = append(n.listeners, l)
	n.mu.Unlock()
	return l
}

// next is a fresh payload for sender tag.
func (n *notifications) next(tag string) string {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.counter[tag]++
	return fmt.Sprintf("%s:%d", tag, n.counter[tag])
}

// sent records a payload whose NOTIFY committed.
func (n *notifications) sent(payload string, pid uint32) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.sentBy[payload] = pid
}

// check requires every listener to have received every committed
// notification exactly once, from the backend that sent it, and nothing
// else.
func (n *notifications) check(rep *Report) {
	n.mu.Lock()
	defer n.mu.Unlock()
	sent := int64(len(n.sentBy))
	rep.atLeast("notifications sent (committed)", sent, 1)
	for _, l := range n.listeners {
		var once, extra int64
		for payload, pid := range n.sentBy {
			c := l.got[payload]
			switch {
			case c == 0:
				rep.Problems = appendProblem(rep.Problems, fmt.Sprintf("%s never received %q", l.name, payload))
			case l.pids[payload] != pid:
				rep.Problems = appendProblem(rep.Problems, fmt.Sprintf("%s received %q from backend %d, it was sent by %d", l.name, payload, l.pids[payload], pid))
			case c == 1:
				once++
			}
			if c > 1 {
				extra += int64(c - 1)
				rep.Problems = appendProblem(rep.Problems, fmt.Sprintf("%s received %q %d times", l.name, payload, c))
			}
		}
		for payload := range l.got {
			if _, ok := n.sentBy[payload]; !ok {
				extra++
				rep.Problems = appendProblem(rep.Problems, fmt.Sprintf("%s received %q, which nobody committed", l.name, payload))
			}
		}
		extra += l.rolledBack + int64(len(l.strange))
		for _, s := range l.strange {
			rep.Problems = appendProblem(rep.Problems, l.name+": "+s)
		}
		rep.equal(l.name+": received each once, from its sender", once, sent)
		rep.equal(l.name+": extra (duplicate, rolled back, unknown)", extra, 0)
		rep.Checks = append(rep.Checks, Check{Name: l.name + ": end marker received", Got: yesNo(l.sawEnd), Want: "yes", OK: l.sawEnd})
	}
}

func appendProblem(ps []string, p string) []string {
	if len(ps) < maxProblems {
		return append(ps, p)
	}
	return ps
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

// listen is a session that LISTENs for the whole run, checks its own
// identity now and then, and ends once it gets the end marker.
func (p *Postgres) listen(a *actor, i int, l *listenLog, ready chan<- bool) {
	r := p.r
	tag := fmt.Sprintf("%s_n%d", r.id, i)
	ctx, cancel := r.opCtx()
	s, err := p.connect(ctx, tag)
	if err == nil {
		_, err = s.conn.Exec(ctx, "LISTEN "+p.notify)
		if err != nil {
			s.close()
		}
	}
	cancel()
	ready <- err == nil
	if err != nil {
		if !errors.Is(err, errWrong) {
			r.fail(tag, "LISTEN", err)
		}
		return
	}
	defer s.close()
	a.doing("waiting for notifications")
	checked := time.Now()
	for r.ctx.Err() == nil {
		wctx, cancel := context.WithTimeout(r.ctx, 250*time.Millisecond)
		n, err := s.conn.WaitForNotification(wctx)
		cancel()
		if err != nil && !(wctx.Err() != nil && r.ctx.Err() == nil && pgconn.Timeout(err)) {
			r.fail(tag, "wait for notifications", err)
			return
		}
		if n != nil {
			switch {
			case n.Channel != p.notify:
				l.strange = append(l.strange, fmt.Sprintf("notification on channel %q", n.Channel))
			case n.Payload == endMarker:
				l.sawEnd = true
				return
			case strings.HasPrefix(n.Payload, rolledBackPrefix):
				l.rolledBack++
			default:
				l.got[n.Payload]++
				l.pids[n.Payload] = n.PID
			}
		}
		if time.Since(checked) > time.Second {
			ictx, cancel := r.opCtx()
			err := s.identity(ictx)
			cancel()
			if err != nil {
				if !errors.Is(err, errWrong) {
					r.fail(tag, "identity", err)
				}
				return
			}
			checked = time.Now()
		}
	}
}
