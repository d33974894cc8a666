package config

import "fmt"

// Engine is the database protocol an upstream speaks. It decides the
// default port and listen address and which engine serves the clients;
// every command takes it from here so that a new engine is one constant
// and its cases, not a string compared in many files.
type Engine string

// The engines.
const (
	Postgres Engine = "postgres"
	MySQL    Engine = "mysql"
	// DSQL is Aurora DSQL: the Postgres wire protocol, with its own
	// token (service dsql, action DbConnect or DbConnectAdmin), trust (the
	// system roots) and limits (see proxy/dsql).
	DSQL Engine = "dsql"
)

// Engines lists every engine, in the order messages name them.
var Engines = []Engine{Postgres, MySQL, DSQL}

// ParseEngine reads an engine's name; "" is Postgres, the default.
func ParseEngine(s string) (Engine, error) {
	e := Engine(s)
	if e == "" {
		return Postgres, nil
	}
	if err := e.Check(); err != nil {
		return "", err
	}
	return e, nil
}

// Check refuses an engine the proxy does not serve.
func (e Engine) Check() error {
	for _, known := range Engines {
		if e == known {
			return nil
		}
	}
	return fmt.Errorf("%q: use postgres, mysql or dsql", string(e))
}

// OrDefault is e, or Postgres when e is unset.
func (e Engine) OrDefault() Engine {
	if e == "" {
		return Postgres
	}
	return e
}

// DefaultPort is the engine's port, used when an endpoint names none.
func (e Engine) DefaultPort() int {
	if e == MySQL {
		return 3306
	}
	return 5432
}

// DefaultListen is where the engine's proxy listens unless told:
// loopback, one above the engine's port so that a local server can keep
// its own.
func (e Engine) DefaultListen() string {
	if e == MySQL {
		return "127.0.0.1:3307"
	}
	return "127.0.0.1:6432"
}

// String is the engine's name, as written in flags and files.
func (e Engine) String() string { return string(e) }

// Set stores an engine's name as a flag value. It does not check it: the
// check happens with every other setting's, so the message names where
// the value was written.
func (e *Engine) Set(s string) error {
	*e = Engine(s)
	return nil
}

// PostgresWire reports whether the engine's clients speak the Postgres
// protocol (postgres and dsql): psql, pgx, psycopg2 connect to both.
func (e Engine) PostgresWire() bool { return e.OrDefault() != MySQL }
