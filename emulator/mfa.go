package emulator

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha1"
	"encoding/binary"
	"encoding/xml"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"time"
)

// MFA, as STS sees it: virtual devices of IAM users whose one-time codes
// (RFC 6238 TOTP, or a fixed code a test sets) AssumeRole and
// GetSessionToken accept once each, and the aws:MultiFactorAuthPresent and
// aws:MultiFactorAuthAge condition keys the sessions they issue carry.

const (
	totpStep   = 30 * time.Second
	totpDigits = 6
	// A code is accepted for the step it belongs to and one step either
	// side, as AWS tolerates a device's clock drift.
	totpSkewSteps = 1

	msgMFAInvalid = "MultiFactorAuthentication failed with invalid MFA one time pass code."
	msgMFAUnknown = "MultiFactorAuthentication failed, unable to validate MFA code. " +
		"Please verify your MFA serial number is valid and associated with this user."

	// GetSessionToken's limits: 15 minutes to 36 hours, 12 hours by default.
	minUserSessionSecs     = 900
	maxUserSessionSecs     = 129600
	defaultUserSessionSecs = 43200
)

var tokenCodeRE = regexp.MustCompile(`^[0-9]{6}$`)

// mfaDevice is a virtual MFA device of one user.
type mfaDevice struct {
	serial string
	user   *iamUser
	secret []byte
	fixed  string               // a test's fixed code; "" = TOTP only
	used   map[string]time.Time // code -> when it stops mattering (reuse window)
}

// AddMFADevice gives the IAM user userName (of the emulator's account) a
// virtual MFA device arn:aws:iam::ACCOUNT:mfa/USERNAME and returns its serial
// and TOTP secret: [TOTP] computes the codes it accepts. It panics if the
// user does not exist (a test's mistake). Calling it again replaces the
// device's secret.
func (a *AWS) AddMFADevice(userName string) (serial string, secret []byte) {
	secret = make([]byte, 20)
	_, _ = rand.Read(secret)
	a.mu.Lock()
	defer a.mu.Unlock()
	u, ok := a.users[a.iamARN("user", userName)]
	if !ok {
		panic("emulator: AddMFADevice: no user " + userName)
	}
	serial = a.iamARN("mfa", userName)
	if a.mfaDevices == nil {
		a.mfaDevices = map[string]*mfaDevice{}
	}
	a.mfaDevices[serial] = &mfaDevice{serial: serial, user: u, secret: secret, used: map[string]time.Time{}}
	return serial, secret
}

// SetFixedMFACode makes the device serial accept code (six digits) as well as
// its TOTP codes, still once per 30-second step like any code. "" removes it.
func (a *AWS) SetFixedMFACode(serial, code string) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	d, ok := a.mfaDevices[serial]
	if !ok {
		return fmt.Errorf("emulator: no MFA device %s", serial)
	}
	if code != "" && !tokenCodeRE.MatchString(code) {
		return fmt.Errorf("emulator: MFA code %q is not six digits", code)
	}
	d.fixed = code
	return nil
}

// TOTP is the RFC 6238 code of secret at t: HMAC-SHA1, 30-second steps, six
// digits. Tests compute the code a device shows with it.
func TOTP(secret []byte, t time.Time) string {
	var msg [8]byte
	binary.BigEndian.PutUint64(msg[:], uint64(t.Unix()/int64(totpStep/time.Second)))
	m := hmac.New(sha1.New, secret)
	m.Write(msg[:])
	sum := m.Sum(nil)
	off := sum[len(sum)-1] & 0x0f
	bin := binary.BigEndian.Uint32(sum[off:off+4]) & 0x7fffffff
	return fmt.Sprintf("%0*d", totpDigits, bin%1_000_000)
}

// checkMFA verifies serial and code for the user behind who, and spends the
// code. The error is STS's answer (AccessDenied, with STS's words); its
// reason says precisely why, for the log.
func (a *AWS) checkMFA(who principal, serial, code string) (time.Time, *stsError) {
	if code == "" {
		return time.Time{}, newSTSError(http.StatusForbidden, "AccessDenied", msgMFAUnknown, "SerialNumber sent without a TokenCode")
	}
	if !tokenCodeRE.MatchString(code) {
		return time.Time{}, validationError("tokenCode", `Member must satisfy regular expression pattern: [\d]*`, code)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	now := a.nowLocked()
	d, ok := a.mfaDevices[serial]
	if !ok || who.kind != "User" || d.user.arn != who.principalARN {
		return time.Time{}, newSTSError(http.StatusForbidden, "AccessDenied", msgMFAUnknown,
			fmt.Sprintf("MFA device %s is not a device of %s", serial, who.arn))
	}
	for at, until := range d.used {
		if now.After(until) {
			delete(d.used, at)
		}
	}
	valid := d.fixed != "" && code == d.fixed
	for i := -totpSkewSteps; !valid && i <= totpSkewSteps; i++ {
		valid = hmac.Equal([]byte(TOTP(d.secret, now.Add(time.Duration(i)*totpStep))), []byte(code))
	}
	if !valid {
		return time.Time{}, newSTSError(http.StatusForbidden, "AccessDenied", msgMFAInvalid, "wrong code for "+serial)
	}
	if _, reused := d.used[code]; reused {
		return time.Time{}, newSTSError(http.StatusForbidden, "AccessDenied", msgMFAInvalid, "code already used for "+serial)
	}
	d.used[code] = now.Add(time.Duration(2*totpSkewSteps+1) * totpStep)
	return now, nil
}

// mfaKeys adds the MFA condition keys of who at now to keys, as AWS
// supplies them: long-term keys carry neither; temporary credentials carry
// aws:MultiFactorAuthPresent (true or false), and aws:MultiFactorAuthAge
// (seconds since the code was checked) only when MFA was used.
func mfaKeys(keys map[string]string, who principal, now time.Time) map[string]string {
	if keys == nil {
		keys = map[string]string{}
	}
	if !who.session {
		return keys
	}
	keys["aws:MultiFactorAuthPresent"] = strconv.FormatBool(who.mfa)
	if who.mfa {
		keys["aws:MultiFactorAuthAge"] = strconv.FormatInt(int64(now.Sub(who.mfaAt)/time.Second), 10)
	}
	return keys
}

// countCall records one successful STS action for [AWS.STSCalls].
func (a *AWS) countCall(action string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.calls == nil {
		a.calls = map[string]int{}
	}
	a.calls[action]++
}

// STSCalls returns how many times action succeeded: "AssumeRole" (without
// MFA), "AssumeRoleMFA" (with SerialNumber and TokenCode),
// "GetSessionToken", "GetSessionTokenMFA", "GetAccessKeyInfo".
func (a *AWS) STSCalls(action string) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.calls[action]
}

// getSessionToken is sts:GetSessionToken: temporary credentials of an IAM
// user, asked with the user's long-term keys, with MFA when SerialNumber and
// TokenCode are sent.
func (a *AWS) getSessionToken(r *http.Request, body []byte, params url.Values) (any, *stsError) {
	who, serr := a.authenticate(r, body)
	if serr != nil {
		return nil, serr
	}
	if who.session {
		return nil, newSTSError(http.StatusForbidden, "AccessDenied", "Cannot call GetSessionToken with session credentials", "")
	}
	d := time.Duration(defaultUserSessionSecs) * time.Second
	if v := params.Get("DurationSeconds"); v != "" {
		n, err := strconv.Atoi(v)
		switch {
		case err != nil:
			return nil, newSTSError(http.StatusBadRequest, "ValidationError",
				fmt.Sprintf("Value '%s' for parameter DurationSeconds is invalid. Must be an integer.", v), "")
		case n < minUserSessionSecs:
			return nil, validationError("durationSeconds", "Member must have value greater than or equal to 900", v)
		case n > maxUserSessionSecs:
			return nil, validationError("durationSeconds", "Member must have value less than or equal to 129600", v)
		}
		d = time.Duration(n) * time.Second
	}
	var mfaAt time.Time
	if serial := params.Get("SerialNumber"); serial != "" {
		if mfaAt, serr = a.checkMFA(who, serial, params.Get("TokenCode")); serr != nil {
			return nil, serr
		}
	}
	a.mu.Lock()
	u := a.users[who.principalARN]
	s := a.issueSessionLocked(nil, "", d, "", who.arn)
	s.user, s.mfa, s.mfaAt = u, !mfaAt.IsZero(), mfaAt
	a.mu.Unlock()
	if s.mfa {
		a.countCall("GetSessionTokenMFA")
	} else {
		a.countCall("GetSessionToken")
	}
	a.log.Info("sts session token issued", "caller", who.arn, "access_key_id", s.accessKeyID, "mfa", s.mfa,
		"expires", s.expires.Format(time.RFC3339))
	resp := &getSessionTokenResponse{Xmlns: stsNamespace}
	resp.Result.Credentials = stsCredentialsOf(s)
	return resp, nil
}

// getAccessKeyInfo is sts:GetAccessKeyInfo: the account an access key id
// belongs to. Any caller may ask.
func (a *AWS) getAccessKeyInfo(r *http.Request, body []byte, params url.Values) (any, *stsError) {
	if _, serr := a.authenticate(r, body); serr != nil {
		return nil, serr
	}
	id := params.Get("AccessKeyId")
	if id == "" {
		return nil, validationError("accessKeyId", "Member must not be null", "")
	}
	cred, ok := a.lookupCredential(id)
	if !ok {
		return nil, newSTSError(http.StatusBadRequest, "InvalidParameterValue",
			"The access key ID provided is not valid.", "unknown access key id "+id)
	}
	a.countCall("GetAccessKeyInfo")
	resp := &getAccessKeyInfoResponse{Xmlns: stsNamespace}
	resp.Result.Account = cred.who.account
	return resp, nil
}

type getSessionTokenResponse struct {
	XMLName xml.Name `xml:"GetSessionTokenResponse"`
	Xmlns   string   `xml:"xmlns,attr"`
	Result  struct {
		Credentials stsCredentials `xml:"Credentials"`
	} `xml:"GetSessionTokenResult"`
	ResponseMetadata responseMetadata `xml:"ResponseMetadata"`
}

type getAccessKeyInfoResponse struct {
	XMLName xml.Name `xml:"GetAccessKeyInfoResponse"`
	Xmlns   string   `xml:"xmlns,attr"`
	Result  struct {
		Account string `xml:"Account"`
	} `xml:"GetAccessKeyInfoResult"`
	ResponseMetadata responseMetadata `xml:"ResponseMetadata"`
}
