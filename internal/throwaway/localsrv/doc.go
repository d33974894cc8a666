// Package localsrv is the machinery shared by the throwaway database
// servers of internal/throwaway/localpg (PostgreSQL) and internal/throwaway/localmy (MariaDB):
// running a server program as another OS user when we are root, tying its
// life to ours (process group, parent-death signal), stopping it with a
// signal and a deadline, keeping the tail of its output for error
// messages, preparing directories it can reach and owns, and picking a
// free loopback port.
//
// Errors carry no package prefix: the callers wrap them with their own
// ("localpg: ...", "localmy: ..."), which is the name a reader knows.
package localsrv
