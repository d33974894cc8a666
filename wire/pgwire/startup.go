package pgwire

import (
	"bytes"
	"strings"
)

// Startup is a parsed StartupMessage.
type Startup struct {
	// Minor is the 3.x minor version the client asked for.
	Minor uint16
	// Params are the client's parameters (user, database, application_name,
	// options, ...), without protocol options.
	Params map[string]string
	// ProtocolOptions are the "_pq_." parameters the client asked for. None
	// is supported: NegotiateProtocolVersion reports them.
	ProtocolOptions []string
}

// parseStartupParams parses NUL-terminated name/value pairs ending in an
// empty name.
func parseStartupParams(b []byte) (*Startup, error) {
	st := &Startup{Params: map[string]string{}}
	for {
		i := bytes.IndexByte(b, 0)
		if i < 0 {
			return nil, protocolErrorf("invalid startup packet layout: expected terminator as last byte")
		}
		if i == 0 {
			if len(b) != 1 {
				return nil, protocolErrorf("invalid startup packet layout: bytes after the terminator")
			}
			break
		}
		name := string(b[:i])
		b = b[i+1:]
		j := bytes.IndexByte(b, 0)
		if j < 0 {
			return nil, protocolErrorf("invalid startup packet layout: parameter %q has no value", name)
		}
		value := string(b[:j])
		b = b[j+1:]
		if strings.HasPrefix(name, "_pq_.") {
			st.ProtocolOptions = append(st.ProtocolOptions, name)
			continue
		}
		st.Params[name] = value
	}
	if st.Params["user"] == "" {
		return nil, &ProtocolError{Code: CodeInvalidAuthorization, Message: "no PostgreSQL user name specified in startup packet"}
	}
	return st, nil
}

// User is the user the client asked for.
func (s *Startup) User() string { return s.Params["user"] }

// Database is the database the client asked for; like PostgreSQL, it
// defaults to the user name.
func (s *Startup) Database() string {
	if db := s.Params["database"]; db != "" {
		return db
	}
	return s.Params["user"]
}

// RuntimeParams are the parameters to pass upstream: everything but the
// user and database, which a login sets itself.
func (s *Startup) RuntimeParams() map[string]string {
	out := make(map[string]string, len(s.Params))
	for k, v := range s.Params {
		if k != "user" && k != "database" {
			out[k] = v
		}
	}
	return out
}
