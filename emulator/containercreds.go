package emulator

import (
	"crypto/subtle"
	"fmt"
	"net/http"
	"time"
)

// The container credentials endpoint is what the ECS agent serves at
// http://169.254.170.2$AWS_CONTAINER_CREDENTIALS_RELATIVE_URI and the EKS
// Pod Identity agent at http://169.254.170.23/v1/credentials
// (AWS_CONTAINER_CREDENTIALS_FULL_URI with
// AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE). The SDK fetches it with a GET
// carrying the Authorization token, if it has one.
const (
	containerV1Path = "/v1/credentials"  // EKS Pod Identity
	containerV2Path = "/v2/credentials/" // ECS task role, /v2/credentials/<id>
)

// SetContainerCredentials makes the container credentials endpoint hand out
// sessions of the role roleName (of the emulator's account). authToken is
// the Authorization header every request must carry; "" requires none (ECS
// task roles without a token). An empty roleName turns the endpoint off
// (404).
func (a *AWS) SetContainerCredentials(roleName, authToken string) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if roleName != "" {
		if _, ok := a.roleByNameLocked(roleName); !ok {
			return fmt.Errorf("emulator: no role named %q", roleName)
		}
	}
	if roleName != a.containerRole {
		a.containerSession = nil
	}
	a.containerRole, a.containerToken = roleName, authToken
	a.rememberLocked(time.Time{}, authToken)
	return nil
}

// ContainerCredentialsURL is the full URI for AWS_CONTAINER_CREDENTIALS_FULL_URI
// (EKS Pod Identity's path) on server base URL base.
func ContainerCredentialsURL(base string) string { return base + containerV1Path }

// ContainerRelativeURI is a value for AWS_CONTAINER_CREDENTIALS_RELATIVE_URI
// (ECS's form).
const ContainerRelativeURI = containerV2Path + "6f1e3c0a-emulated-task"

type containerCredentials struct {
	AccessKeyID     string `json:"AccessKeyId"`
	SecretAccessKey string `json:"SecretAccessKey"`
	Token           string `json:"Token"`
	Expiration      string `json:"Expiration"`
	RoleArn         string `json:"RoleArn,omitempty"`
	AccountID       string `json:"AccountId,omitempty"`
}

func (a *AWS) serveContainer(w http.ResponseWriter, r *http.Request) {
	log := a.log.With("service", "container-credentials", "path", r.URL.Path)
	if f, ok := a.takeFault(FaultContainer); ok && !a.applyFault(r, f, FaultContainer) {
		if f.Status != 0 && r.Context().Err() == nil {
			containerError(w, f.Status, f.Code, f.Message)
		}
		return
	}
	if r.Method != http.MethodGet {
		containerError(w, http.StatusMethodNotAllowed, "InvalidMethod", "only GET")
		return
	}
	a.mu.Lock()
	roleName, want := a.containerRole, a.containerToken
	role, ok := a.roleByNameLocked(roleName)
	a.mu.Unlock()
	if roleName == "" || !ok {
		log.Warn("container credentials request rejected", "status", http.StatusNotFound, "reason", "no container role configured")
		containerError(w, http.StatusNotFound, "NotFound", "no credentials for this container")
		return
	}
	got := r.Header.Get("Authorization")
	if want != "" && subtle.ConstantTimeCompare([]byte(got), []byte(want)) != 1 {
		reason := "Authorization header is not the container's token"
		if got == "" {
			reason = "no Authorization header"
		}
		log.Warn("container credentials request rejected", "status", http.StatusUnauthorized, "reason", reason)
		containerError(w, http.StatusUnauthorized, "AccessDeniedException", "Authorization token is not valid")
		return
	}
	service := "ecs-tasks.amazonaws.com"
	if r.URL.Path == containerV1Path {
		service = "pods.eks.amazonaws.com"
	}
	if err := a.checkTrust(assumeRequest{action: "sts:AssumeRole", roleARN: role.arn, roleName: role.name,
		callerARN: service, service: service}); err != nil {
		log.Warn("container credentials refused", "role", role.arn, "reason", err.Error())
		containerError(w, http.StatusForbidden, "AccessDeniedException", fmt.Sprintf("%s cannot assume the role %s", service, role.name))
		return
	}
	a.mu.Lock()
	now := a.nowLocked()
	s := a.containerSession
	window := min(imdsRefreshWindow, a.sessionDuration/2)
	fresh := s == nil || s.role != role || !now.Before(s.expires.Add(-window)) || !a.sessionKeptLocked(s)
	if fresh {
		s = a.issueSessionLocked(role, "container-"+randomText(8), a.sessionDuration, "", service)
		a.containerSession = s
	}
	a.mu.Unlock()
	if fresh {
		log.Info("container credentials issued", "role", role.arn, "access_key_id", s.accessKeyID, "expires", s.expires.Format(time.RFC3339))
	}
	log.Debug("container credentials served", "role", role.arn, "access_key_id", s.accessKeyID)
	writeJSON(w, http.StatusOK, containerCredentials{
		AccessKeyID: s.accessKeyID, SecretAccessKey: s.secret, Token: s.token,
		Expiration: s.expires.UTC().Format(time.RFC3339), RoleArn: role.arn, AccountID: role.account,
	})
}

func containerError(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, map[string]string{"code": code, "message": msg})
}

// RotateInstanceCredentials makes instance metadata hand out new
// credentials from now on, as EC2 does some minutes before the old ones
// expire. The old credentials stay valid until their expiry.
func (a *AWS) RotateInstanceCredentials() {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.imdsSession = nil
}
