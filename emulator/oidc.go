package emulator

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"
)

// STS accepts a web identity token only from an OpenID Connect provider
// registered in the account's IAM, and only if the token is signed with one
// of the provider's keys, unexpired, and for one of its client IDs
// (audiences). The emulator plays both sides: [AWS.AddOIDCProvider]
// registers an issuer and makes the emulator that issuer, with its own
// RSA key pair, and [OIDCProvider.Mint] signs tokens (RS256) the way the
// cluster's service account token issuer or a CI system would. Tokens that
// are not signed by a registered provider's key, forged, expired or for
// another audience are refused with STS's error codes.

const (
	// maxWebIdentityToken is STS's bound on WebIdentityToken.
	maxWebIdentityToken = 20000
	// defaultTokenLife is how long a minted token lasts unless told.
	defaultTokenLife = time.Hour

	msgWebIdentityInvalid = "The web identity token that was passed could not be validated by AWS. Get a new identity token from the identity provider and then retry the request."
)

// OIDCProvider is an OpenID Connect issuer registered in the emulated
// account, whose signing key the emulator holds.
type OIDCProvider struct {
	issuer    string // as registered: https://...
	clientIDs []string
	key       *rsa.PrivateKey
	kid       string
	aws       *AWS
}

// AddOIDCProvider registers issuer (an https URL, as IAM requires, e.g.
// "https://oidc.eks.us-east-1.amazonaws.com/id/EXAMPLE") as an OIDC
// provider of the account, trusted for the audiences clientIDs (default
// "sts.amazonaws.com"), and returns it with a new 2048-bit RSA signing key.
// Registering the same issuer again returns the existing provider (its
// audiences extended), so tests sharing an emulator share its key.
func (a *AWS) AddOIDCProvider(issuer string, clientIDs ...string) (*OIDCProvider, error) {
	if !strings.HasPrefix(issuer, "https://") || len(issuer) <= len("https://") {
		return nil, fmt.Errorf("emulator: OIDC issuer %q: IAM needs an https:// URL", issuer)
	}
	if len(clientIDs) == 0 {
		clientIDs = []string{"sts.amazonaws.com"}
	}
	name := issuerName(issuer)
	a.mu.Lock()
	if p, ok := a.oidc[name]; ok {
		for _, id := range clientIDs {
			if !slices.Contains(p.clientIDs, id) {
				p.clientIDs = append(p.clientIDs, id)
			}
		}
		a.mu.Unlock()
		return p, nil
	}
	a.mu.Unlock()

	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, fmt.Errorf("emulator: OIDC signing key: %w", err)
	}
	der, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		return nil, fmt.Errorf("emulator: OIDC signing key: %w", err)
	}
	sum := sha256.Sum256(der)
	p := &OIDCProvider{issuer: issuer, clientIDs: slices.Clone(clientIDs), key: key, kid: hex.EncodeToString(sum[:8]), aws: a}

	a.mu.Lock()
	defer a.mu.Unlock()
	if old, ok := a.oidc[name]; ok { // registered meanwhile
		return old, nil
	}
	a.oidc[name] = p
	return p, nil
}

// issuerName is an issuer without its scheme and trailing slash, the way
// IAM names an OIDC provider.
func issuerName(iss string) string {
	return strings.TrimSuffix(strings.TrimPrefix(iss, "https://"), "/")
}

// Issuer is the provider's URL, the iss claim of its tokens.
func (p *OIDCProvider) Issuer() string { return p.issuer }

// PublicKey is the key tokens are verified with (what the issuer's JWKS
// would publish).
func (p *OIDCProvider) PublicKey() *rsa.PublicKey { return &p.key.PublicKey }

// WebIdentityClaims are the claims of a token to mint.
type WebIdentityClaims struct {
	// Subject is the sub claim, e.g. "system:serviceaccount:prod:app".
	Subject string
	// Audience is the aud claim; "" means the provider's first client ID.
	Audience string
	// IssuedAt is the iat claim; zero means now on the emulator's clock.
	IssuedAt time.Time
	// Expires is the exp claim; zero means IssuedAt plus an hour.
	Expires time.Time
}

// jwtHeader and jwtClaims are a token's JSON parts.
type jwtHeader struct {
	Alg string `json:"alg"`
	Kid string `json:"kid,omitempty"`
	Typ string `json:"typ,omitempty"`
}

type jwtClaims struct {
	Iss string          `json:"iss"`
	Sub string          `json:"sub"`
	Aud json.RawMessage `json:"aud"`
	Exp *int64          `json:"exp"`
	Iat *int64          `json:"iat,omitempty"`
	Nbf *int64          `json:"nbf,omitempty"`
}

// Mint returns a web identity token for c, signed with the provider's key
// (RS256), as the provider would issue it.
func (p *OIDCProvider) Mint(c WebIdentityClaims) string {
	iat := c.IssuedAt
	if iat.IsZero() {
		iat = p.aws.Now()
	}
	exp := c.Expires
	if exp.IsZero() {
		exp = iat.Add(defaultTokenLife)
	}
	aud := c.Audience
	if aud == "" {
		p.aws.mu.Lock()
		aud = p.clientIDs[0]
		p.aws.mu.Unlock()
	}
	audJSON, _ := json.Marshal(aud)
	iatUnix, expUnix := iat.Unix(), exp.Unix()
	header, _ := json.Marshal(jwtHeader{Alg: "RS256", Kid: p.kid, Typ: "JWT"})
	claims, _ := json.Marshal(jwtClaims{Iss: p.issuer, Sub: c.Subject, Aud: audJSON, Exp: &expUnix, Iat: &iatUnix})
	signed := b64(header) + "." + b64(claims)
	return signed + "." + b64(signRS256(p.key, signed))
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func signRS256(key *rsa.PrivateKey, signed string) []byte {
	sum := sha256.Sum256([]byte(signed))
	sig, err := rsa.SignPKCS1v15(rand.Reader, key, crypto.SHA256, sum[:])
	if err != nil {
		// Only a key too small for SHA-256 fails; the key is 2048 bits.
		panic("emulator: sign web identity token: " + err.Error())
	}
	return sig
}

// verifyWebIdentity checks a web identity token as STS does and returns
// its claims: a JWT whose issuer is a registered OIDC provider, signed
// with RS256 by that provider's key, unexpired (exp required) and already
// valid (nbf), for one of the provider's client IDs. Failures carry STS's
// codes: InvalidIdentityToken, or ExpiredTokenException for an expired
// token; the reason for the log says exactly what was wrong.
func (a *AWS) verifyWebIdentity(token string) (webIdentityClaims, *stsError) {
	invalid := func(msg, reason string) (webIdentityClaims, *stsError) {
		if msg == "" {
			msg = msgWebIdentityInvalid
		}
		return webIdentityClaims{}, newSTSError(http.StatusBadRequest, "InvalidIdentityToken", msg, reason)
	}
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return invalid("", "the web identity token is not a JWT (want three base64url parts separated by dots)")
	}
	var h jwtHeader
	var c jwtClaims
	hb, herr := base64.RawURLEncoding.DecodeString(parts[0])
	cb, cerr := base64.RawURLEncoding.DecodeString(parts[1])
	sig, serr := base64.RawURLEncoding.DecodeString(parts[2])
	if herr != nil || cerr != nil || serr != nil || json.Unmarshal(hb, &h) != nil || json.Unmarshal(cb, &c) != nil {
		return invalid("", "the web identity token is not a JWT (a part is not base64url JSON)")
	}
	if c.Iss == "" {
		return invalid("", "the web identity token is not a JWT with an iss claim")
	}
	a.mu.Lock()
	p, ok := a.oidc[issuerName(c.Iss)]
	var clientIDs []string
	if ok {
		clientIDs = slices.Clone(p.clientIDs)
	}
	now := a.nowLocked()
	a.mu.Unlock()
	if !ok {
		return invalid("No OpenIDConnect provider found in your account for "+c.Iss, "issuer "+c.Iss+" is not a registered OIDC provider")
	}
	if h.Alg != "RS256" {
		return invalid("", fmt.Sprintf("the token's alg is %q; only RS256 tokens of the provider's key are accepted", h.Alg))
	}
	if h.Kid != "" && h.Kid != p.kid {
		return invalid("Couldn't retrieve verification key from your identity provider,  please reference AssumeRoleWithWebIdentity documentation for requirements",
			fmt.Sprintf("the token's kid %q is not a key of %s", h.Kid, c.Iss))
	}
	sum := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	if err := rsa.VerifyPKCS1v15(&p.key.PublicKey, crypto.SHA256, sum[:], sig); err != nil {
		return invalid("", "the token's signature does not verify with the key of "+c.Iss+" (forged, altered, or signed by another key)")
	}
	if c.Exp == nil {
		return invalid("", "the token has no exp claim")
	}
	if nowUnix := now.Unix(); nowUnix >= *c.Exp {
		return webIdentityClaims{}, newSTSError(http.StatusBadRequest, "ExpiredTokenException",
			fmt.Sprintf("Token expired: current date/time %d must be before the expiration date/time %d", nowUnix, *c.Exp),
			fmt.Sprintf("the web identity token expired at %s (emulator clock %s)",
				time.Unix(*c.Exp, 0).UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339)))
	}
	if c.Nbf != nil && now.Unix() < *c.Nbf {
		return invalid("", fmt.Sprintf("the token is not valid before %s", time.Unix(*c.Nbf, 0).UTC().Format(time.RFC3339)))
	}
	out := webIdentityClaims{subject: c.Sub, issuer: c.Iss}
	var one string
	var many []string
	var auds []string
	if json.Unmarshal(c.Aud, &one) == nil {
		auds = []string{one}
	} else if json.Unmarshal(c.Aud, &many) == nil {
		auds = many
	}
	for _, aud := range auds {
		if slices.Contains(clientIDs, aud) {
			out.audience = aud
			return out, nil
		}
	}
	return invalid("Incorrect token audience", fmt.Sprintf("audience %q is not a client ID of the provider %s (%s)", auds, c.Iss, strings.Join(clientIDs, ", ")))
}
