package config

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"reflect"
	"regexp"
	"strings"

	"go.yaml.in/yaml/v3"
)

// maxFileSize bounds the config file: a config is a few kilobytes.
const maxFileSize = 1 << 20

// Flags are the run command's flags, bound to a flag set by Register.
type Flags struct {
	fs       *flag.FlagSet
	settings Settings // global settings and upstream defaults
	single   Upstream // --engine, --endpoint, --listen, --dial-address
	specs    specList // --upstream
	file     string   // --config
}

// singleKeys are the one-upstream flags: they describe the upstream given
// by flags alone (the way the proxy ran before config files).
var singleKeys = []string{"engine", "endpoint", "listen", "dial_address", "allow_local_infile", "dsql_action", "dsql_session_limit"}

// Register adds every setting to fs as a flag, with its default.
func Register(fs *flag.FlagSet) *Flags {
	f := &Flags{fs: fs, settings: defaults()}
	fs.StringVar(&f.file, "config", "", "YAML file of settings and upstreams (flags and RDS_IAM_PROXY_* variables win over it)")
	fs.Var(&f.specs, "upstream", "an upstream as key=value pairs, repeatable: name=orders,engine=postgres,endpoint=HOST:5432,listen=127.0.0.1:5432 (keys as in the config file's upstreams); in RDS_IAM_PROXY_UPSTREAM separate several with ;")
	sv := reflect.ValueOf(&f.settings).Elem()
	for _, fl := range settingsFields {
		bindFlag(fs, fl, sv.FieldByIndex(fl.index))
	}
	uv := reflect.ValueOf(&f.single).Elem()
	for _, key := range singleKeys {
		fl, _ := lookup(upstreamFields, key)
		bindFlag(fs, fl, uv.FieldByIndex(fl.index))
	}
	// --ca-cache-dir is the older name of --cache-dir.
	fs.Var(aliasValue{fs, "cache-dir"}, "ca-cache-dir", "same as --cache-dir")
	return f
}

func bindFlag(fs *flag.FlagSet, f field, v reflect.Value) {
	switch p := v.Addr().Interface().(type) {
	case *string:
		fs.StringVar(p, f.flagName(), *p, f.usage)
	case *Engine:
		fs.Var(p, f.flagName(), f.usage)
	case *int:
		fs.IntVar(p, f.flagName(), *p, f.usage)
	case *bool:
		fs.BoolVar(p, f.flagName(), *p, f.usage)
	case *Duration:
		// The backquoted word names the value in --help ("-idle-timeout
		// duration"), as flag.Duration's do.
		fs.Var(p, f.flagName(), f.usage+" (a `duration`: 30s, 5m)")
	default:
		panic(fmt.Sprintf("config: setting %s has unsupported type %s", f.key, v.Type()))
	}
}

// aliasValue is a flag that sets another flag.
type aliasValue struct {
	fs     *flag.FlagSet
	target string
}

func (a aliasValue) String() string     { return "" }
func (a aliasValue) Set(s string) error { return a.fs.Set(a.target, s) }

// specList collects --upstream values. Specs from RDS_IAM_PROXY_UPSTREAM
// are replaced by any --upstream flag, as every other variable is by its
// flag.
type specList struct {
	specs   []string
	origins []string
	fromEnv bool
}

func (s *specList) String() string { return strings.Join(s.specs, "; ") }

// Set adds one spec from a flag, or several separated by ";" or newlines.
func (s *specList) Set(v string) error {
	if s.fromEnv {
		*s = specList{}
	}
	s.add(v, "--upstream")
	return nil
}

// SetFromEnv takes RDS_IAM_PROXY_UPSTREAM (see ParseArgs).
func (s *specList) SetFromEnv(v string) error {
	*s = specList{fromEnv: true}
	s.add(v, EnvName("upstream"))
	return nil
}

func (s *specList) add(v, source string) {
	for _, spec := range strings.FieldsFunc(v, func(r rune) bool { return r == ';' || r == '\n' }) {
		if spec = strings.TrimSpace(spec); spec != "" {
			s.specs = append(s.specs, spec)
			s.origins = append(s.origins, fmt.Sprintf("%s #%d", source, len(s.specs)))
		}
	}
}

// envSetter is a flag value that takes its environment variable
// differently from its flag.
type envSetter interface{ SetFromEnv(string) error }

// Load combines the file, the environment and the flags (already parsed
// into fs) and checks the result. The error lists every problem, each
// naming its key.
func (f *Flags) Load() (*Settings, error) {
	s := defaults()
	if f.file != "" {
		if err := loadFile(f.file, &s); err != nil {
			return nil, err
		}
	}
	set := map[string]bool{}
	f.fs.Visit(func(fl *flag.Flag) { set[fl.Name] = true })

	sv, fv := reflect.ValueOf(&s).Elem(), reflect.ValueOf(&f.settings).Elem()
	for _, fl := range settingsFields {
		if set[fl.flagName()] {
			sv.FieldByIndex(fl.index).Set(fv.FieldByIndex(fl.index))
		}
	}

	// Upstreams from the command line replace the file's.
	var cli []Upstream
	var errs []error
	singleSet := set["engine"] || set["listen"] || set["dial-address"] || set["allow-local-infile"]
	switch {
	case set["endpoint"]:
		u := f.single
		u.origin = "--endpoint"
		cli = append(cli, u)
	case singleSet:
		errs = append(errs, errors.New("--engine, --listen, --dial-address and --allow-local-infile (or their RDS_IAM_PROXY_ variables) describe the one upstream given by --endpoint, and no --endpoint is set; for a config file's upstreams set them in the file, or give --upstream"))
	}
	for i, spec := range f.specs.specs {
		u, err := ParseUpstream(spec)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", f.specs.origins[i], err))
			continue
		}
		u.origin = f.specs.origins[i]
		cli = append(cli, u)
	}
	if len(cli) > 0 {
		s.Upstreams = cli
	} else {
		// Defaults given by flags or variables win over a file upstream's
		// own value too: the command line wins over the whole file.
		for _, fl := range defaultsFields {
			if set[fl.flagName()] {
				s.override = append(s.override, fl)
			}
		}
	}
	if len(errs) > 0 && len(s.Upstreams) == 0 {
		return nil, errors.Join(errs...) // "no upstreams" would only repeat them
	}
	if err := s.check(); err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return &s, nil
}

// loadFile decodes path onto s, strictly: an unknown key is an error, as
// a misspelt setting would otherwise be silently ignored.
func loadFile(path string, s *Settings) error {
	fh, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	defer fh.Close()
	data, err := io.ReadAll(io.LimitReader(fh, maxFileSize+1))
	if err != nil {
		return fmt.Errorf("config %s: %w", path, err)
	}
	if len(data) > maxFileSize {
		return fmt.Errorf("config %s: over %d bytes; is it the right file?", path, maxFileSize)
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(s); err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("config %s: %s", path, yamlMessage(err))
	}
	for i := range s.Upstreams {
		s.Upstreams[i].origin = fmt.Sprintf("%s: upstreams[%d]", path, i)
	}
	// An MFA code works once and for 30 seconds: in a file it is stale by
	// the next start, and a secret at rest for nothing.
	codeInFile := s.MFACode != ""
	for _, u := range s.Upstreams {
		codeInFile = codeInFile || u.MFACode != ""
	}
	if codeInFile {
		return fmt.Errorf("config %s: mfa_code does not belong in a file (a code works once, for 30 seconds); pass it with --mfa-code or RDS_IAM_PROXY_MFA_CODE, or type it when asked", path)
	}
	return nil
}

var unknownField = regexp.MustCompile(`field (\S+) not found in type \S+`)

// yamlMessage rewrites the decoder's Go-flavoured texts for a person.
func yamlMessage(err error) string {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	msg = strings.ReplaceAll(msg, "unmarshal errors:\n  ", "")
	return unknownField.ReplaceAllString(msg, "unknown key $1")
}

// EnvPrefix starts the environment variable of every flag: --dial-address
// is RDS_IAM_PROXY_DIAL_ADDRESS.
const EnvPrefix = "RDS_IAM_PROXY_"

// EnvName is the environment variable that sets flag name.
func EnvName(name string) string {
	return EnvPrefix + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
}

// ParseArgs applies RDS_IAM_PROXY_* variables (looked up with lookupEnv,
// os.LookupEnv in the program), then args, so flags win over the
// environment. Variables count as set flags (flag.FlagSet.Visit sees them),
// which is how Load lets them win over the file.
func ParseArgs(fs *flag.FlagSet, args []string, lookupEnv func(string) (string, bool)) error {
	var envErr error
	fs.VisitAll(func(f *flag.Flag) {
		name := EnvName(f.Name)
		if v, ok := lookupEnv(name); ok && envErr == nil {
			var err error
			if es, ok := f.Value.(envSetter); ok {
				err = es.SetFromEnv(v)
			} else {
				err = fs.Set(f.Name, v)
			}
			if err != nil {
				envErr = fmt.Errorf("%s=%q: %w", name, v, err)
			}
		}
	})
	if envErr != nil {
		return envErr
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q (flags start with --)", fs.Arg(0))
	}
	return nil
}
