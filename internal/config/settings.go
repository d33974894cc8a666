package config

import (
	"fmt"
	"time"

	"go.yaml.in/yaml/v3"
)

// Duration is a time.Duration written "30s", "2m" in files, flags and the
// environment.
type Duration time.Duration

func (d Duration) String() string { return time.Duration(d).String() }

// Set parses a duration (flag.Value).
func (d *Duration) Set(s string) error {
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("%q is not a duration (write 30s, 2m, 1h)", s)
	}
	*d = Duration(v)
	return nil
}

// UnmarshalYAML reads a duration from the file, naming the line when it
// is not one.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	if err := d.Set(n.Value); err != nil {
		return fmt.Errorf("line %d: %w", n.Line, err)
	}
	return nil
}

// Defaults are the upstream settings that may also be written once, at the
// top level, for every upstream. Their usage texts are the help of every
// command that takes the setting (run, token, whoami, doctor, validate,
// setup), so that a flag means one thing wherever it appears.
type Defaults struct {
	Region          string   `yaml:"region" usage:"the DB's AWS region (default: from an RDS endpoint name, else AWS_REGION or the profile)"`
	Profile         string   `yaml:"profile" usage:"AWS shared-config profile (default: AWS_PROFILE or default)"`
	DBUser          string   `yaml:"db_user" usage:"the database user, case-sensitive: run logs every client in as it whatever user the client names (default: the client's own); the other commands sign tokens for it and check it (setup policy: USER[,USER])"`
	TLSMode         string   `yaml:"tls_mode" usage:"upstream TLS: verify-full (default; the only mode for RDS names), verify-ca, or disable (loopback only; plaintext)"`
	TLSServerName   string   `yaml:"tls_server_name" usage:"the name the upstream certificate must carry, when it is not the endpoint's"`
	CABundle        string   `yaml:"ca_bundle" usage:"PEM file of trusted CAs (default: download AWS's RDS bundle for the DB's partition and cache it)"`
	CABundleURL     string   `yaml:"ca_bundle_url" usage:"download the CA bundle from this https URL instead"`
	CABundleRegion  string   `yaml:"ca_bundle_region" usage:"download AWS's regional bundle for this region (auto: the DB's)"`
	CacheDir        string   `yaml:"cache_dir" usage:"where the downloaded CA bundle is cached (default: the user cache dir)"`
	CARefresh       Duration `yaml:"ca_refresh" usage:"how often a running proxy reloads the CA bundle (0: a day; negative: never)"`
	SocketMode      string   `yaml:"socket_mode" usage:"file mode of unix socket listeners, octal (default 0600)"`
	RoleARN         string   `yaml:"role_arn" usage:"assume this role with the AWS chain's credentials before signing; a comma-separated list is a chain (assume the first, then the next with its session), e.g. for another account"`
	ExternalID      string   `yaml:"external_id" usage:"external ID to send with each role_arn AssumeRole, when the role's trust policy requires one"`
	RoleSessionName string   `yaml:"role_session_name" usage:"session name for role_arn's sessions (default: rds-iam-proxy@HOST.USER, as CloudTrail shows it)"`
	RoleDuration    Duration `yaml:"role_duration" usage:"session length to ask for role_arn (15m to 12h, at most 1h for a chained role; default 15m, as the AWS SDKs ask)"`
	STSEndpoint     string   `yaml:"sts_endpoint" usage:"base URL for every STS call, e.g. a VPC endpoint (default: the regional STS endpoint, or AWS_ENDPOINT_URL_STS)"`
	MFASerial       string   `yaml:"mfa_serial" usage:"MFA device (arn:aws:iam::ACCOUNT:mfa/NAME) for sts:GetSessionToken with the IAM user's keys; its session signs tokens and assumes role_arn (a profile's own mfa_serial needs no flag)"`
	MFACode         string   `yaml:"mfa_code" usage:"a current MFA code, for starting without a terminal (each code works once, so a flag or variable only, never the file)"`
	MFADuration     Duration `yaml:"mfa_duration" usage:"length of the MFA (GetSessionToken) session: 15m to 36h, at most 1h for the account root (default 12h)"`
	// Aurora clusters (issue 16): the proxy follows the writer by the
	// topology instead of the cluster's DNS.
	Route                 string   `yaml:"route" usage:"Aurora cluster endpoints: writer (default; a -ro- endpoint: reader) sends new connections to the current writer's instance, reader to the reader with the fewest sessions (the writer when there is none)"`
	FailoverWait          Duration `yaml:"failover_wait" usage:"Aurora: how long a new connection is held while no writer is confirmed (a failover) before it is told why (0: 10s)"`
	TopologyRefresh       Duration `yaml:"topology_refresh" usage:"Aurora: how often the cluster's topology is read (0: 30s; every 100ms while a failover is suspected)"`
	InstanceDialAddresses string   `yaml:"instance_dial_addresses" usage:"Aurora: where to dial instance endpoints, as NAME=HOST:PORT pairs separated by spaces (tunnels, the emulator); tokens and TLS stay for NAME"`
	ResumeWait            Duration `yaml:"resume_wait" usage:"Aurora Serverless v2 that pauses at 0 ACU: hold a client's login this long while the upstream refuses or resets connections as a resuming cluster does, retrying, and send nothing of the proxy's own to it while idle (0: off, a refused login fails at once; 60s suits a cluster that resumes in about 15s)"`
}

// Pausable says the upstream may pause (resume_wait is set): the proxy
// then holds logins while it resumes, and nothing of the proxy's own (the
// readiness backend check, pre-warmed or parked sessions, topology
// polling) may reach it, since any connection attempt wakes a paused
// cluster and resets its auto-pause timer. It is the one predicate those
// features read.
func (d Defaults) Pausable() bool { return d.ResumeWait > 0 }

// Upstream is one RDS endpoint and where its clients connect.
type Upstream struct {
	Name           string `yaml:"name" usage:"label in logs and metrics (default: the endpoint's first label)"`
	Engine         Engine `yaml:"engine" usage:"database engine: postgres (default), mysql, or dsql (Aurora DSQL)"`
	Endpoint       string `yaml:"endpoint" usage:"RDS endpoint HOST:PORT (the port defaults to the engine's); tokens are signed for this name and port, and TLS verifies the name"`
	Listen         string `yaml:"listen" usage:"where clients connect: HOST:PORT or unix:PATH (default 127.0.0.1:6432 for postgres, 127.0.0.1:3307 for mysql)"`
	DialAddress    string `yaml:"dial_address" usage:"connect to this HOST:PORT instead of the endpoint (SSH/SSM tunnel, emulator)"`
	MaxConnections int    `yaml:"max_connections" usage:"cap on this upstream's client connections (0: none)"`
	Defaults       `yaml:",inline"`

	// AllowLocalInfile is per upstream: each is its own server to trust.
	AllowLocalInfile bool `yaml:"allow_local_infile" usage:"MySQL: let clients use LOAD DATA LOCAL INFILE (off: the proxy strips CLIENT_LOCAL_FILES both ways). RISK: the server can then ask a client for any file the client can read, whatever query it ran; allow it only for a server you trust"`

	// DSQLAction and DSQLSessionLimit are per upstream: each DSQL cluster
	// is its own endpoint (see dsql.go).
	DSQLAction       string   `yaml:"dsql_action" usage:"Aurora DSQL (engine dsql): the token's action: auto (DbConnectAdmin for the user admin, DbConnect for any other; default), connect, or admin"`
	DSQLSessionLimit Duration `yaml:"dsql_session_limit" usage:"Aurora DSQL (engine dsql): how long DSQL lets a session live (1h); a session the cluster ends after it is told so in the client's protocol. Change it only for a test front"`

	// origin says where the upstream was written, for messages.
	origin string
}

// Serving are the settings every upstream's proxy serves its clients
// with: listen policy, caps on logins, timeouts. They are set once for
// the process; launch takes them as they are, with the meanings written
// here (a cap of 0 is no cap).
type Serving struct {
	AllowNonLoopback   bool     `yaml:"allow_non_loopback" usage:"allow listen addresses other machines can reach (anyone who reaches a listener logs in as the database user), and a non-loopback admin address"`
	MaxHandshakes      int      `yaml:"max_handshakes" usage:"cap per upstream on connections still logging in, counted at accept (0: none); when full a newcomer takes the place of the oldest that has sent nothing for 2s, else gets \"too many connections\""`
	MaxUnanswered      int      `yaml:"max_unanswered_greetings" usage:"MySQL: cap per upstream on database connections held for clients that have not answered the greeting yet (the proxy dials the database as a client connects), so silent clients cannot use up its max_connections (0: none)"`
	HandshakeTimeout   Duration `yaml:"handshake_timeout" usage:"limit for a client's whole login"`
	FirstPacketTimeout Duration `yaml:"first_packet_timeout" usage:"limit for a client's first packet after connecting (Postgres: its startup message; MySQL: its answer to the greeting); 0: handshake_timeout"`
	ConnectTimeout     Duration `yaml:"connect_timeout" usage:"limit for the upstream dial, TLS and login"`
	IdleTimeout        Duration `yaml:"idle_timeout" usage:"close sessions in which no byte moved either way for this long (0: never)"`
	KeepAlive          Duration `yaml:"keepalive" usage:"TCP keepalive period of client connections (0: 15s; negative: off)"`
	UpstreamTCPTimeout Duration `yaml:"upstream_tcp_timeout" usage:"end a session, with an error to its client, when the network path to the upstream is dead this long: data sent unacknowledged, or keepalive probes unanswered (0: 30s; negative: off, the OS's limit of about 15 minutes)"`
	Reuse              `yaml:",inline"`

	// The guard on the IAM login rate and pre-warmed upstream connections
	// (proxy.LoginGuard, proxy.Warm).
	LoginRate           int      `yaml:"login_rate" usage:"new IAM logins a second per endpoint (host:port) at most, over every upstream of the process; RDS throttles near 200 a second per instance (0: no limit)"`
	LoginBurst          int      `yaml:"login_burst" usage:"logins per endpoint that may go at once after a quiet spell, above login_rate"`
	LoginWait           Duration `yaml:"login_wait" usage:"longest a login waits for its turn under login_rate, first come first served; a login whose turn comes later gets \"too many connections\" at once (0: no wait), or with session_reuse waits in line until then for a session another client leaves (MySQL: before its greeting). A place among max_logins_in_progress is waited for as long as the handshake may last"`
	MaxLoginsInProgress int      `yaml:"max_logins_in_progress" usage:"cap per endpoint on upstream logins in progress at once, so a storm is served in turn (0: none); MySQL logins, open from the greeting on, are bounded by max_unanswered_greetings instead"`
	Prewarm             int      `yaml:"prewarm" usage:"upstream connections per endpoint (per instance behind an Aurora cluster endpoint) kept dialed and through TLS (Postgres) or greeted (MySQL), ready for the next client, renewed before the server's handshake timeout (0: none)"`
	PrewarmMaxAge       Duration `yaml:"prewarm_max_age" usage:"age at which a pre-warmed connection is replaced; keep it under the server's handshake timeout (0: half the default one, 30s for postgres (authentication_timeout), 5s for mysql (connect_timeout))"`
}

// DefaultServing are the serving settings before any file, variable or
// flag: what run serves with unless told, and what the demo, the
// benchmarks and the tests start from.
func DefaultServing() Serving {
	return Serving{
		HandshakeTimeout:   Duration(30 * time.Second),
		ConnectTimeout:     Duration(15 * time.Second),
		FirstPacketTimeout: Duration(10 * time.Second),
		MaxHandshakes:      1024,
		MaxUnanswered:      64,
		Reuse:              DefaultReuse(),

		LoginRate:           150,
		LoginBurst:          20,
		LoginWait:           Duration(10 * time.Second),
		MaxLoginsInProgress: 32,
	}
}

// Settings are everything the run command serves.
type Settings struct {
	LogLevel              string `yaml:"log_level" usage:"log level: debug, info, warn, error"`
	LogFormat             string `yaml:"log_format" usage:"log format: text or json"`
	AdminAddress          string `yaml:"admin_address" usage:"HTTP address for /startup, /liveness, /readiness and /metrics (off unless set; e.g. 127.0.0.1:9801)"`
	ShutdownAddress       string `yaml:"shutdown_address" usage:"where POST /quitquitquit (what rds-iam-proxy shutdown sends) is served: a loopback HOST:PORT (e.g. 127.0.0.1:9802) or unix:PATH, never beyond this machine and never on the admin port (off unless set)"`
	ReadinessCheckBackend bool   `yaml:"readiness_check_backend" usage:"make /readiness also dial each upstream (off: readiness never depends on the database)"`
	AdminAllowNonLoopback bool   `yaml:"admin_allow_non_loopback" usage:"allow a non-loopback admin address only (Kubernetes probes come to the pod's IP; the database listeners stay on loopback)"`
	MaxConnections        int    `yaml:"max_connections" usage:"cap on client connections over all upstreams (0: none); over it clients get their protocol's \"too many connections\""`
	Serving               `yaml:",inline"`
	MinShutdownDelay      Duration `yaml:"min_shutdown_delay" usage:"on SIGTERM/SIGINT, keep accepting this long (readiness fails at once) so load balancers and apps move away"`
	MaxShutdownDelay      Duration `yaml:"max_shutdown_delay" usage:"then, how long open connections may finish before they are cut (a second signal exits at once)"`
	ExitCode              int      `yaml:"exit_code" usage:"exit status after a signal when every connection finished (connections cut: 3)"`
	Defaults              `yaml:",inline"`
	Upstreams             []Upstream `yaml:"upstreams"`

	// override are the defaults set on the command line, which win over
	// the file's upstreams' own values.
	override []field
}

// defaults are the settings before any file, variable or flag.
func defaults() Settings {
	return Settings{
		LogLevel:         "info",
		LogFormat:        "text",
		MaxShutdownDelay: Duration(30 * time.Second),
		Serving:          DefaultServing(),
	}
}
