// Package topology knows Aurora clusters: which kind of endpoint a host
// name is and the instance names a cluster name implies (names.go), the
// SQL each engine answers its topology with and how its rows read
// (query.go), what a topology says (view.go), and the refresh loop that
// keeps one current, quickly while a failover is suspected (monitor.go).
// It logs in nowhere itself: the proxy supplies the connections, so the
// monitor's logins are the proxy's own (a token per login, verify-full
// TLS for the instance's name).
package topology
