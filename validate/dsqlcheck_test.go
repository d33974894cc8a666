package validate

import (
	"slices"
	"strings"
	"testing"

	"github.com/rds-iam-proxy/rds-iam-proxy/internal/config"
)

// TestDSQLRequirements: for DSQL, requirements naming sequences or
// temporary tables pass flag checking (the checks then name the missing
// feature), while other engines keep refusing what they do not know.
func TestDSQLRequirements(t *testing.T) {
	tables, err := ParseRequirements([]string{"app.*:SELECT,TEMPORARY", "app.t:TRIGGER"})
	if err != nil {
		t.Fatal(err)
	}
	seqs, err := ParseRequirements([]string{"app.*:USAGE"})
	if err != nil {
		t.Fatal(err)
	}
	if err := CheckRequirements(config.DSQL, tables, seqs); err != nil {
		t.Errorf("dsql: %v", err)
	}
	if err := CheckRequirements(config.Postgres, tables, nil); err == nil {
		t.Error("postgres took TEMPORARY as a table privilege")
	}

	kept, missing := dsqlSplitRequirements(tables)
	if len(kept) != 1 || !slices.Equal(kept[0].Privileges, []string{"SELECT"}) {
		t.Errorf("kept %+v, want app.* SELECT only", kept)
	}
	var names []string
	for _, c := range missing {
		names = append(names, c.Name)
		if c.Status != Fail || !strings.Contains(c.Detail, "Aurora DSQL has no") {
			t.Errorf("missing feature check %+v", c)
		}
	}
	if !slices.Equal(names, []string{"TEMPORARY in app", "TRIGGER in app"}) {
		t.Errorf("missing features %q", names)
	}
	if !strings.Contains(dsqlNoSequences, "gen_random_uuid()") {
		t.Errorf("no alternative to sequences named: %s", dsqlNoSequences)
	}
}
