package mywire_test

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/rds-iam-proxy/rds-iam-proxy/wire/mywire"
)

// answerQuery reads one COM_QUERY and answers with packets, sequence ids
// from 1 (or as seqs says, when set).
func answerQuery(t *testing.T, query string, packets [][]byte, seqs []byte) net.Conn {
	t.Helper()
	return answerCommand(t, []byte("\x03"+query), packets, seqs)
}

// textRow encodes a text-protocol row; a nil value is NULL.
func textRow(vals ...*string) []byte {
	var b []byte
	for _, v := range vals {
		if v == nil {
			b = append(b, 0xfb)
			continue
		}
		if n := len(*v); n < 0xfb {
			b = append(b, byte(n))
		} else {
			b = append(b, 0xfc, byte(n), byte(n>>8))
		}
		b = append(b, *v...)
	}
	return b
}

func str(s string) *string { return &s }

var (
	colDef  = []byte("\x03def\x00\x00\x00\x01a\x00\x0c\x21\x00\x00\x00\x00\x00\xfd\x00\x00\x00\x00\x00")
	eof     = []byte{0xfe, 0, 0, 0x02, 0}
	okEnd   = []byte{0xfe, 0, 0, 0x02, 0, 0, 0} // an OK with the EOF header (CLIENT_DEPRECATE_EOF)
	moreEOF = []byte{0xfe, 0, 0, 0x0a, 0}       // more results follow
	queryOK = []byte{0x00, 0, 0, 0x02, 0, 0, 0}
)

func TestQueryResultSets(t *testing.T) {
	long := strings.Repeat("x", 300) // a two-byte length
	threeRows := [][]byte{textRow(str("inst-a"), str("1"), str("2026-12-07 08:00:00.123456")), textRow(str("inst-b"), str("0"), nil), textRow(str(long), str(""), str("x"))}
	for name, tc := range map[string]struct {
		deprecateEOF bool
		packets      [][]byte
		seqs         []byte
		rows         int
		want         string // "" = success
	}{
		"rows, EOF":            {false, append(append([][]byte{{3}, colDef, colDef, colDef, eof}, threeRows...), eof), nil, 3, ""},
		"rows, DEPRECATE_EOF":  {true, append(append([][]byte{{3}, colDef, colDef, colDef}, threeRows...), okEnd), nil, 3, ""},
		"no rows":              {false, [][]byte{{1}, colDef, eof, eof}, nil, 0, ""},
		"an OK":                {false, [][]byte{queryOK}, nil, 0, ""},
		"ERR first":            {false, [][]byte{mywire.MarshalErr(1146, "Table 'information_schema.replica_host_status' doesn't exist", true)}, nil, 0, "1146"},
		"ERR in the rows":      {false, [][]byte{{1}, colDef, eof, textRow(str("a")), mywire.MarshalErr(1317, "Query execution was interrupted", true)}, nil, 0, "1317"},
		"more results":         {false, [][]byte{{1}, colDef, eof, moreEOF}, nil, 0, "more than one result"},
		"out of step":          {false, [][]byte{{1}, colDef, eof, eof}, []byte{1, 3, 4, 5}, 0, "out of step"},
		"no EOF after columns": {false, [][]byte{{1}, colDef, textRow(str("a")), eof}, nil, 0, "no EOF"},
		"short row":            {false, [][]byte{{2}, colDef, colDef, eof, textRow(str("a")), eof}, nil, 0, "row column 2"},
		"long row":             {false, [][]byte{{1}, colDef, eof, textRow(str("a"), str("b")), eof}, nil, 0, "after its 1 columns"},
		"too many columns":     {false, [][]byte{{200}}, nil, 0, "over the limit"},
		"local infile":         {false, [][]byte{append([]byte{0xfb}, "/etc/passwd"...)}, nil, 0, "local file"},
		"cut short":            {false, [][]byte{{1}, colDef}, nil, 0, "read the answer"},
	} {
		t.Run(name, func(t *testing.T) {
			c := answerQuery(t, "SELECT 1", tc.packets, tc.seqs)
			ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
			defer cancel()
			rows, err := mywire.Query(ctx, c, tc.deprecateEOF, "SELECT 1")
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("err = %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("err = %v, want one naming %q", err, tc.want)
			case len(rows) != tc.rows:
				t.Fatalf("%d rows, want %d", len(rows), tc.rows)
			}
			if tc.rows == 3 {
				if string(rows[0][0]) != "inst-a" || string(rows[0][2]) != "2026-12-07 08:00:00.123456" || rows[1][2] != nil ||
					string(rows[2][0]) != long || rows[2][1] == nil || len(rows[2][1]) != 0 {
					t.Fatalf("rows = %q", rows)
				}
			}
		})
	}
}

// TestQueryBounded: an answer that never ends stops at the limits or the
// deadline, never reading without bound.
func TestQueryBounded(t *testing.T) {
	row := textRow(str(strings.Repeat("y", 200)))
	many := [][]byte{{1}, colDef, eof}
	for range mywire.QueryMaxBytes/len(row) + 10 {
		many = append(many, row)
	}
	c := answerQuery(t, "SELECT y", many, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := mywire.Query(ctx, c, false, "SELECT y"); err == nil || !strings.Contains(err.Error(), "over") {
		t.Fatalf("err = %v, want the answer refused over its limit", err)
	}

	silent := answerQuery(t, "SELECT z", [][]byte{{1}, colDef}, nil)
	ctx, cancel = context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	if _, err := mywire.Query(ctx, silent, false, "SELECT z"); err == nil {
		t.Fatal("a server that stops answering: no error")
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("the deadline was not kept: %s", d)
	}
}
