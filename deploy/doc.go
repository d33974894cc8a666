// Package deploy holds no code: its tests check the packaging that cannot
// run here (no container engine, no cluster, no systemd as init), namely the
// Dockerfile, docker-compose.yml, deploy/kubernetes/, deploy/systemd/ and
// deploy/rds-iam-proxy.example.yaml. They parse every file, build the binary
// exactly as the Dockerfile does and check that it is static, run the
// emulator as compose does, and check that every flag the files pass exists
// in the binary's --help (or is listed as not yet built).
//
// Each file is read with a maintained parser, the tool's own where it is
// published as a library, so the tests see what docker or systemd would:
// BuildKit's Dockerfile parser, moby/patternmatcher for .dockerignore,
// go-systemd's unit parser, mvdan.cc/sh for shell command lines and
// environment files, and yaml.v3 (strict) for compose, Kubernetes and the
// config file. One file per thing checked: dockerfile_test.go,
// dockerignore_test.go, compose_test.go, compose_emulator_test.go,
// compose_path_test.go, kubernetes_test.go, systemd_test.go,
// config_test.go, shutdown_test.go and flags_test.go; build_test.go builds
// the binary once, shell_test.go and yaml_test.go hold the parsing helpers.
package deploy
