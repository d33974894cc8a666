package mixload

import (
	"bytes"
	"crypto/md5"
	"encoding/hex"
	"fmt"
	"math"
	"math/big"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestPayloadIsRepeatableAndNamesItsRow(t *testing.T) {
	for _, binaryOK := range []bool{false, true} {
		for seq := 1; seq < 500; seq++ {
			a, b := payload("m1_l0", seq, binaryOK), payload("m1_l0", seq, binaryOK)
			if !bytes.Equal(a, b) {
				t.Fatalf("payload(%d) differs between calls", seq)
			}
			if !bytes.HasPrefix(a, fmt.Appendf(nil, "m1_l0#%d|", seq)) {
				t.Fatalf("payload(%d) = %q does not start with its key", seq, a)
			}
			if bytes.Equal(a, payload("m1_l1", seq, binaryOK)) {
				t.Fatalf("two sessions' row %d are equal", seq)
			}
			if binaryOK {
				continue
			}
			if !utf8.Valid(a) {
				t.Fatalf("text payload %q is not UTF-8", a)
			}
			for _, c := range a {
				if c < 0x20 && c != '\t' && c != '\n' {
					t.Fatalf("text payload %q has control byte %#x", a, c)
				}
			}
		}
	}
}

func TestPayloadsCoverWhatEscapingMustSurvive(t *testing.T) {
	var all []byte
	for seq := 1; seq < 200; seq++ {
		all = append(all, payload("t", seq, true)...)
	}
	for _, want := range []string{"\t", "\n", "\\", "'", "\"", "漢", "🙂", "\x00", "\xff"} {
		if !bytes.Contains(all, []byte(want)) {
			t.Errorf("200 binary payloads never contain %q", want)
		}
	}
}

// unescapeCopy undoes COPY's text-format escapes, as the server does.
func unescapeCopy(t *testing.T, field string) string {
	var b strings.Builder
	for i := 0; i < len(field); i++ {
		if field[i] != '\\' {
			b.WriteByte(field[i])
			continue
		}
		i++
		switch field[i] {
		case '\\':
			b.WriteByte('\\')
		case 't':
			b.WriteByte('\t')
		case 'n':
			b.WriteByte('\n')
		case 'r':
			b.WriteByte('\r')
		default:
			t.Fatalf("unexpected escape \\%c", field[i])
		}
	}
	return b.String()
}

func TestCopyLineRoundTrips(t *testing.T) {
	for seq := 1; seq < 300; seq++ {
		pl := payload("m1_l2", seq, false)
		line := appendCopyLine(nil, "m1_l2", seq, pl)
		if bytes.Count(line, []byte("\n")) != 1 || line[len(line)-1] != '\n' {
			t.Fatalf("line %q has a raw newline inside", line)
		}
		fields := strings.Split(strings.TrimSuffix(string(line), "\n"), "\t")
		if len(fields) != 3 || fields[0] != "m1_l2" || fields[1] != strconv.Itoa(seq) {
			t.Fatalf("line %q: fields %q", line, fields)
		}
		if got := unescapeCopy(t, fields[2]); got != string(pl) {
			t.Fatalf("payload %q came back as %q", pl, got)
		}
	}
}

// TestRowHashIsWhatSQLComputes: the first 15 hex digits of md5, as
// substr(md5(...), 1, 15) in Postgres and SUBSTRING(MD5(...), 1, 15) in
// MySQL read them.
func TestRowHashIsWhatSQLComputes(t *testing.T) {
	pl := []byte("x\ty'z")
	sum := md5.Sum([]byte("tag:42:x\ty'z"))
	want, err := strconv.ParseUint(hex.EncodeToString(sum[:])[:15], 16, 64)
	if err != nil {
		t.Fatal(err)
	}
	if got := rowHash("tag", 42, pl); got != want {
		t.Fatalf("rowHash %x, want %x", got, want)
	}
}

func TestSum128CarriesAndPrints(t *testing.T) {
	var s sum128
	want := new(big.Int)
	for i := range 1000 {
		v := uint64(math.MaxUint64>>4) - uint64(i)
		s.add(v)
		want.Add(want, new(big.Int).SetUint64(v))
	}
	var t2 sum128
	t2.addSum(s)
	t2.addSum(s)
	if s.String() != want.String() {
		t.Fatalf("sum %s, want %s", s, want)
	}
	if t2.String() != new(big.Int).Mul(want, big.NewInt(2)).String() {
		t.Fatalf("doubled sum %s", t2)
	}
}

func TestLedgerTracksCommitsAndDeletes(t *testing.T) {
	l := newLedger()
	b1, b2, b3 := newBatch("a", 1, 10, false), newBatch("a", 11, 30, false), newBatch("b", 1, 5, true)
	l.commit("a", b1)
	l.commit("a", b2)
	l.commit("b", b3)
	if l.live("a") != 30 || l.live("b") != 5 {
		t.Fatalf("live a %d b %d", l.live("a"), l.live("b"))
	}
	if _, ok := l.oldest("a", 30); ok {
		t.Fatal("trim offered at the limit")
	}
	old, ok := l.oldest("a", 25)
	if !ok || old.first != 1 || old.last != 10 {
		t.Fatalf("oldest %+v %v", old, ok)
	}
	l.remove("a", old)
	rows, sum := l.totals()
	var want sum128
	want.addSum(b2.sum)
	want.addSum(b3.sum)
	if rows != 25 || sum != want {
		t.Fatalf("totals %d %s, want 25 %s", rows, sum, want)
	}
	// A batch's sum is the sum of its rows' hashes.
	var byRow sum128
	for seq := 11; seq <= 30; seq++ {
		byRow.add(rowHash("a", seq, payload("a", seq, false)))
	}
	if byRow != b2.sum {
		t.Fatal("batch sum differs from its rows' hashes")
	}
}

func TestLiveSessionsRefuseASharedBackend(t *testing.T) {
	l := newLiveSessions()
	if err := l.open(7, "a"); err != nil {
		t.Fatal(err)
	}
	if err := l.open(7, "b"); err == nil || !strings.Contains(err.Error(), "open session a") {
		t.Fatalf("second session on backend 7: %v", err)
	}
	l.close(7, "b") // not b's: a keeps it
	if got := l.openTags(); len(got) != 1 || got[0] != "a" {
		t.Fatalf("open %v", got)
	}
	l.close(7, "a")
	if err := l.open(7, "b"); err != nil {
		t.Fatalf("backend 7 after a closed: %v", err)
	}
}

const scrape = `# HELP rds_iam_proxy_connections_total Client connections accepted.
# TYPE rds_iam_proxy_connections_total counter
rds_iam_proxy_connections_total{engine="postgres",upstream="pg"} 12
rds_iam_proxy_connections_total{engine="mysql",upstream="my"} 3
rds_iam_proxy_connections_failed_total{engine="postgres",reason="cancel_request",upstream="pg"} 4
rds_iam_proxy_connections_failed_total{engine="postgres",reason="limit",upstream="pg"} 1
rds_iam_proxy_connections_open{engine="postgres",upstream="pg"} 0
go_goroutines 15
process_open_fds 13
`

func TestMetricsParseAndCompare(t *testing.T) {
	m, err := parseMetrics(strings.NewReader(scrape))
	if err != nil {
		t.Fatal(err)
	}
	if got := m.Sum(ns+"connections_total", `upstream="pg"`); got != 12 {
		t.Fatalf("pg connections %v", got)
	}
	if got := m.Sum(ns + "connections_total"); got != 15 {
		t.Fatalf("all connections %v", got)
	}
	if got := m.Sum("go_goroutines"); got != 15 {
		t.Fatalf("goroutines %v", got)
	}
	before := Metrics{}
	rep := &Report{Connections: 12, CancelRequests: 4}
	checks := ConnectionChecks(before, m, "pg", rep)
	var failed []string
	for _, c := range checks {
		if !c.OK {
			failed = append(failed, c.Name)
		}
	}
	// The one refusal for "limit" is the only thing wrong.
	if len(failed) != 1 || !strings.Contains(failed[0], "any other reason") {
		t.Fatalf("failed checks %q", failed)
	}
}

func TestReportTable(t *testing.T) {
	r := &Report{Title: "t"}
	r.equal("same", 3, 3)
	r.info("figure", "%d", 9)
	if !r.Passed() || !strings.Contains(r.String(), "PASS") {
		t.Fatalf("passing report:\n%s", r)
	}
	r.atLeast("did some", 0, 1)
	r.equalStr("checksum", "1", "2")
	if r.Passed() {
		t.Fatal("a failed check passed")
	}
	if f := r.Failed(); !strings.Contains(f, "did some: got 0, want >= 1") || !strings.Contains(f, "checksum: got 1, want 2") {
		t.Fatalf("Failed() = %q", f)
	}
	if !strings.HasSuffix(r.String(), "FAIL\n") {
		t.Fatalf("table:\n%s", r)
	}
}
