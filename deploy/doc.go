// Package deploy holds no code: its tests check the packaging that cannot
// run here (no container engine, no cluster, no systemd as init), namely the
// Dockerfile, docker-compose.yml, deploy/kubernetes/, deploy/systemd/ and
// deploy/rds-iam-proxy.example.yaml. They parse every file, build the binary
// exactly as the Dockerfile does and check that it is static, run the
// emulator as compose does, and check that every flag the files pass exists
// in the binary's --help (or is listed as not yet built).
package deploy
