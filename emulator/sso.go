package emulator

import (
	"crypto/subtle"
	"fmt"
	"net/http"
	"time"
)

// The IAM Identity Center (SSO) portal's GetRoleCredentials, which the SDK
// calls for a profile with sso_start_url or sso_session after `aws sso
// login` left an access token in ~/.aws/sso/cache. Point the SDK at it
// with AWS_ENDPOINT_URL_SSO.
const ssoCredentialsPath = "/federation/credentials"

type ssoGrant struct {
	token, account, role string
}

// AddSSOAccess lets the SSO access token accessToken (as `aws sso login`
// caches it) get credentials for the role roleName of account, which must
// exist.
func (a *AWS) AddSSOAccess(accessToken, account, roleName string) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if _, ok := a.roles[a.iamARNIn(account, "role", roleName)]; !ok {
		return fmt.Errorf("emulator: no role %s in account %s", roleName, account)
	}
	a.ssoGrants = append(a.ssoGrants, ssoGrant{token: accessToken, account: account, role: roleName})
	a.rememberLocked(time.Time{}, accessToken)
	return nil
}

func (a *AWS) serveSSO(w http.ResponseWriter, r *http.Request) {
	log := a.log.With("service", "sso", "path", r.URL.Path)
	if r.Method != http.MethodGet {
		ssoError(w, http.StatusBadRequest, "InvalidRequestException", "only GET")
		return
	}
	tok := r.Header.Get("X-Amz-Sso_bearer_token")
	account, roleName := r.URL.Query().Get("account_id"), r.URL.Query().Get("role_name")
	a.mu.Lock()
	known, allowed := false, false
	for _, g := range a.ssoGrants {
		if subtle.ConstantTimeCompare([]byte(g.token), []byte(tok)) == 1 {
			known = true
			allowed = allowed || g.account == account && g.role == roleName
		}
	}
	role, ok := a.roles[a.iamARNIn(account, "role", roleName)]
	a.mu.Unlock()
	switch {
	case tok == "" || !known:
		log.Warn("sso request rejected", "status", http.StatusUnauthorized, "reason", "unknown or missing SSO access token")
		ssoError(w, http.StatusUnauthorized, "UnauthorizedException", "Session token not found or invalid")
		return
	case !allowed || !ok:
		log.Warn("sso request rejected", "status", http.StatusForbidden, "reason", fmt.Sprintf("token has no access to role %s in account %s", roleName, account))
		ssoError(w, http.StatusForbidden, "ForbiddenException", "No access")
		return
	}
	a.mu.Lock()
	s := a.issueSessionLocked(role, "sso-user", a.sessionDuration, "", "sso")
	a.mu.Unlock()
	log.Info("sso role credentials issued", "role", role.arn, "access_key_id", s.accessKeyID, "expires", s.expires.Format(time.RFC3339))
	writeJSON(w, http.StatusOK, map[string]any{"roleCredentials": map[string]any{
		"accessKeyId": s.accessKeyID, "secretAccessKey": s.secret, "sessionToken": s.token,
		"expiration": s.expires.UnixMilli(),
	}})
}

func ssoError(w http.ResponseWriter, status int, typ, msg string) {
	w.Header().Set("X-Amzn-Errortype", typ)
	writeJSON(w, status, map[string]string{"__type": typ, "message": msg})
}
