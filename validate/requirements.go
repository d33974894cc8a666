package validate

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/rds-iam-proxy/rds-iam-proxy/internal/config"
)

// Requirement is privileges the IAM user needs on some objects: on every
// table (or sequence) of a Postgres schema or MySQL database when Object is
// "*", else on the one named object. It is written SCHEMA.OBJECT:PRIV,PRIV,
// e.g. "public.*:SELECT,INSERT", the form of --require and of the YAML
// file, so a requirement reads the same wherever it is given.
type Requirement struct {
	Schema     string   // Postgres schema, MySQL database
	Object     string   // "*": all of them; else a table or sequence name
	Privileges []string // upper case, in the order given, no duplicates
}

// All says whether the requirement covers every object of its schema.
func (r Requirement) All() bool { return r.Object == "*" }

// String is the requirement in the flag form.
func (r Requirement) String() string {
	return quoteReqName(r.Schema) + "." + objectName(r.Object) + ":" + strings.Join(r.Privileges, ",")
}

func objectName(o string) string {
	if o == "*" {
		return o
	}
	return quoteReqName(o)
}

// quoteReqName double-quotes a name that would not parse back bare.
func quoteReqName(s string) string {
	if s != "" && !strings.ContainsAny(s, `.:"`+"`* ") {
		return s
	}
	return `"` + strings.ReplaceAll(s, `"`, `""`) + `"`
}

// ParseRequirement reads "SCHEMA.OBJECT:PRIV,PRIV". SCHEMA alone means
// SCHEMA.*; a name holding dots or colons is double-quoted (or
// backquoted), with the quote doubled inside. Names keep their case:
// Postgres folds unquoted names in SQL, but catalogs hold them as stored.
func ParseRequirement(s string) (Requirement, error) {
	in := strings.TrimSpace(s)
	schema, rest, err := readName(in)
	if err != nil {
		return Requirement{}, fmt.Errorf("requirement %q: %w", s, err)
	}
	r := Requirement{Schema: schema, Object: "*"}
	if strings.HasPrefix(rest, ".") {
		rest = rest[1:]
		if strings.HasPrefix(rest, "*") {
			rest = rest[1:]
		} else if r.Object, rest, err = readName(rest); err != nil {
			return Requirement{}, fmt.Errorf("requirement %q: %w", s, err)
		}
	}
	if !strings.HasPrefix(rest, ":") {
		return Requirement{}, fmt.Errorf("requirement %q: want SCHEMA.OBJECT:PRIVILEGE[,PRIVILEGE...], e.g. public.*:SELECT,INSERT", s)
	}
	for _, p := range strings.Split(rest[1:], ",") {
		p = strings.ToUpper(strings.Join(strings.Fields(p), " "))
		if p == "" {
			return Requirement{}, fmt.Errorf("requirement %q: an empty privilege", s)
		}
		if p == "ALL PRIVILEGES" {
			p = "ALL"
		}
		if !slices.Contains(r.Privileges, p) {
			r.Privileges = append(r.Privileges, p)
		}
	}
	return r, nil
}

// readName reads one name, bare (up to '.' or ':') or quoted with " or `,
// and returns the rest of s.
func readName(s string) (name, rest string, err error) {
	if s == "" {
		return "", "", errors.New("a name is missing")
	}
	if q := s[0]; q == '"' || q == '`' {
		var b strings.Builder
		for i := 1; i < len(s); i++ {
			if s[i] != q {
				b.WriteByte(s[i])
				continue
			}
			if i+1 < len(s) && s[i+1] == q {
				b.WriteByte(q)
				i++
				continue
			}
			if b.Len() == 0 {
				return "", "", errors.New("an empty quoted name")
			}
			return b.String(), s[i+1:], nil
		}
		return "", "", errors.New("an unterminated quoted name")
	}
	end := strings.IndexAny(s, ".:")
	if end < 0 {
		end = len(s)
	}
	name = strings.TrimSpace(s[:end])
	if name == "" || name == "*" {
		return "", "", errors.New("a schema name is missing")
	}
	return name, s[end:], nil
}

// ParseRequirements parses each of specs (flag values).
func ParseRequirements(specs []string) ([]Requirement, error) {
	var out []Requirement
	for _, s := range specs {
		r, err := ParseRequirement(s)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, nil
}

// RequirementsFile is the YAML form of the requirements, for a file kept
// next to the application's migrations:
//
//	require:
//	  - "public.*:SELECT,INSERT,UPDATE,DELETE"
//	require_sequences:
//	  - "public.*:USAGE,SELECT"
type RequirementsFile struct {
	Require          []string `yaml:"require"`
	RequireSequences []string `yaml:"require_sequences"`
}

// LoadRequirements reads a requirements YAML file: tables, then sequences.
// Unknown keys are errors, so a misspelt key does not silently drop its
// requirements.
func LoadRequirements(path string) (tables, sequences []Requirement, err error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, fmt.Errorf("requirements file: %w", err)
	}
	tables, sequences, err = ParseRequirementsYAML(data)
	if err != nil {
		return nil, nil, fmt.Errorf("requirements file %s: %w", path, err)
	}
	return tables, sequences, nil
}

// ParseRequirementsYAML is LoadRequirements on the file's content.
func ParseRequirementsYAML(data []byte) (tables, sequences []Requirement, err error) {
	var f RequirementsFile
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil && !errors.Is(err, io.EOF) {
		return nil, nil, err
	}
	if tables, err = ParseRequirements(f.Require); err != nil {
		return nil, nil, err
	}
	if sequences, err = ParseRequirements(f.RequireSequences); err != nil {
		return nil, nil, err
	}
	return tables, sequences, nil
}

// DefaultRequirements is what validate asks for when told nothing: SELECT
// on every table of the schema (Postgres) or database (MySQL), the least
// an application user needs to be useful.
func DefaultRequirements(schema string) []Requirement {
	return []Requirement{{Schema: schema, Object: "*", Privileges: []string{"SELECT"}}}
}

// Privileges each engine knows, per kind of object; "ALL" is each list.
var (
	pgTablePrivileges    = []string{"SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE", "REFERENCES", "TRIGGER"}
	pgSequencePrivileges = []string{"USAGE", "SELECT", "UPDATE"}
	// mysqlPrivileges are those that apply on a database or table.
	mysqlPrivileges = []string{"SELECT", "INSERT", "UPDATE", "DELETE", "CREATE", "DROP", "REFERENCES", "INDEX",
		"ALTER", "CREATE TEMPORARY TABLES", "LOCK TABLES", "EXECUTE", "CREATE VIEW", "SHOW VIEW",
		"CREATE ROUTINE", "ALTER ROUTINE", "EVENT", "TRIGGER", "DELETE HISTORY"}
)

// expand replaces ALL with the kind's privileges and refuses unknown ones,
// so a typo is an error rather than a check that can never pass.
func expand(r Requirement, known []string, kind string) (Requirement, error) {
	var privs []string
	for _, p := range r.Privileges {
		switch {
		case p == "ALL":
			for _, k := range known {
				if !slices.Contains(privs, k) {
					privs = append(privs, k)
				}
			}
		case slices.Contains(known, p):
			if !slices.Contains(privs, p) {
				privs = append(privs, p)
			}
		default:
			return r, fmt.Errorf("requirement %s: %s is not a privilege on %s (known: %s)", r, p, kind, strings.Join(known, ", "))
		}
	}
	r.Privileges = privs
	return r, nil
}

// CheckRequirements refuses requirements the engine cannot check: unknown
// privileges, and sequences outside Postgres. The command calls it before
// connecting anywhere.
func CheckRequirements(engine config.Engine, tables, sequences []Requirement) error {
	known := pgTablePrivileges
	if engine == config.DSQL {
		// DSQL's missing features are reported by its checks, not refused here.
		tables, _ = dsqlSplitRequirements(tables)
		sequences = nil
	}
	if engine == config.MySQL {
		known = mysqlPrivileges
		if len(sequences) > 0 {
			return errors.New("MySQL has no sequences: drop --require-sequences")
		}
	}
	for _, r := range tables {
		if _, err := expand(r, known, "tables"); err != nil {
			return err
		}
	}
	for _, r := range sequences {
		if _, err := expand(r, pgSequencePrivileges, "sequences"); err != nil {
			return err
		}
	}
	return nil
}
