package authtoken

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/smithy-go"

	"github.com/rds-iam-proxy/rds-iam-proxy/failure"
)

// MFA configures multi-factor authentication: a profile with role_arn and
// mfa_serial (detected from the profile, see mfaprofile.go), or
// GetSessionToken with Serial for an IAM user whose policy requires MFA.
//
// A code is asked once, at Prepare; afterwards the session is kept without
// one (the role is assumed again from the MFA session, each result written
// to the AWS CLI's cache) until the MFA session ends.
type MFA struct {
	// Serial is the MFA device (arn:aws:iam::ACCOUNT:mfa/NAME) for
	// GetSessionToken on top of the chain's long-term keys (--mfa-serial).
	// A profile's mfa_serial needs no setting here.
	Serial string
	// Code is a current code at hand (--mfa-code); codes work once, so it
	// is used at Prepare only.
	Code string
	// Prompt asks a person for the code of serial (on a terminal); nil
	// when there is no terminal.
	Prompt func(ctx context.Context, serial string) (string, error)
	// Duration of the GetSessionToken session (900 s to 36 h); 0 = 12 h.
	Duration time.Duration
	// CacheDir is the AWS CLI's cache (default ~/.aws/cli/cache).
	CacheDir string
}

// MFA session warnings, and the prompt for a new code in a terminal.
const (
	mfaWarnEarly     = 15 * time.Minute
	mfaWarnLate      = 5 * time.Minute
	mfaDefaultGST    = 12 * time.Hour
	mfaRoleDuration  = time.Hour        // longer than the CLI's 15-minute cache window
	cacheFreshEnough = 15 * time.Minute // the CLI's own bar for a cached session
)

// MFAError is a failure to get credentials that need an MFA code. Its text
// names the profile and the device, never a secret.
type MFAError struct {
	Profile string // the profile with mfa_serial, "" for --mfa-serial
	Serial  string // the MFA device
	Kind    MFAErrorKind
	Ended   time.Time // KindEnded: when the MFA session ended
	Err     error     // what STS said, for KindRefused
}

// MFAErrorKind says what went wrong.
type MFAErrorKind int

const (
	// MFANoCode: a code is needed and there is neither a terminal to ask
	// on, nor --mfa-code, nor a valid session in the AWS CLI cache.
	MFANoCode MFAErrorKind = iota
	// MFARefused: STS refused the code (wrong, reused, not this user's
	// device) or the source credentials.
	MFARefused
	// MFAEnded: the MFA session ended; a new code is needed.
	MFAEnded
)

func (e *MFAError) who() string {
	if e.Profile != "" {
		return fmt.Sprintf("profile %q (mfa_serial %s)", e.Profile, e.Serial)
	}
	return "--mfa-serial " + e.Serial
}

// Cause says what failed.
func (e *MFAError) Cause() string {
	switch e.Kind {
	case MFARefused:
		return fmt.Sprintf("STS refused the MFA step for %s: %s", e.who(), redactSecrets(stsMessage(e.Err)))
	case MFAEnded:
		return fmt.Sprintf("the MFA session of %s ended at %s; a new MFA code is needed", e.who(), e.Ended.UTC().Format(time.RFC3339))
	}
	return fmt.Sprintf("%s needs an MFA code, and there is no terminal to ask on, no --mfa-code, and no valid session in the AWS CLI cache", e.who())
}

// Fix says what a person can do.
func (e *MFAError) Fix() string {
	refresh := "aws sts get-caller-identity"
	if e.Profile != "" {
		refresh += " --profile " + e.Profile
	}
	switch e.Kind {
	case MFARefused:
		return "type the current code shown by device " + e.Serial + " (each code works once: if you just used it, wait for the next one), " +
			"and check that the device belongs to the user whose keys are used"
	case MFAEnded:
		return "type a code (restart rds-iam-proxy in a terminal, or with --mfa-code / RDS_IAM_PROXY_MFA_CODE), " +
			"or refresh the session with `" + refresh + "` (the proxy re-reads the AWS CLI cache)"
	}
	return "run rds-iam-proxy in a terminal and type the code; or pass a current code with --mfa-code (RDS_IAM_PROXY_MFA_CODE); " +
		"or refresh the AWS CLI cache first with `" + refresh + "`; or use a role without MFA"
}

func (e *MFAError) Error() string { return failure.Join(e.Cause(), e.Fix()) }
func (e *MFAError) Unwrap() error { return e.Err }

// stsMessage is STS's own words from err, without the SDK's request
// details.
func stsMessage(err error) string {
	if err == nil {
		return "no answer"
	}
	var api smithy.APIError
	if errors.As(err, &api) {
		return api.ErrorCode() + ": " + strings.TrimSpace(api.ErrorMessage())
	}
	return err.Error()
}

// MFAState is what whoami, doctor and the metrics say about MFA.
type MFAState struct {
	Configured bool      // the proxy does MFA itself (profile or --mfa-serial)
	Profile    string    // the profile with mfa_serial, if any
	Serial     string    // the device
	Present    bool      // the held credentials were got with MFA
	Ends       time.Time // when a new code will be needed (zero: unknown)
	From       string    // "code", "AWS CLI cache"
}

// MFAState reports the MFA session. Configured is false when the proxy
// got its credentials without doing MFA itself (MFA then is unknown).
func (s *Source) MFAState() MFAState {
	if s.mfa == nil {
		return MFAState{}
	}
	return s.mfa.state()
}

// Prepare gets credentials before the proxy listens, when MFA is
// configured: from the AWS CLI cache, else with Code, else with Prompt; a
// code is never needed again until the MFA session ends. Without MFA it
// does nothing (credentials are fetched on the first token, as before).
// It starts the warnings ahead of the MFA session's end, which Close stops.
func (s *Source) Prepare(ctx context.Context) error {
	m := s.mfa
	if m == nil {
		return nil
	}
	if _, err := m.Retrieve(ctx); err != nil {
		if _, needCode := errors.AsType[*MFAError](err); !needCode {
			return err
		}
		code, from := m.opts.Code, "--mfa-code"
		if code == "" && m.opts.Prompt != nil {
			c, perr := m.opts.Prompt(ctx, m.serial)
			if perr != nil {
				return fmt.Errorf("read the MFA code for %s: %w", m.serial, perr)
			}
			code, from = strings.TrimSpace(c), "prompt"
		}
		if code == "" {
			return err
		}
		if err := m.authenticate(ctx, code); err != nil {
			return err
		}
		s.log.Info("MFA session started", "mfa_serial", m.serial, "code_from", from, "ends", m.state().Ends.UTC().Format(time.RFC3339))
	}
	if _, err := s.current(ctx); err != nil {
		return err
	}
	m.mu.Lock()
	watch := !m.watched
	m.watched = true
	m.mu.Unlock()
	if watch {
		// One watcher per MFA session: upstreams sharing it warn and
		// ask once.
		s.wg.Add(1)
		go s.watchMFA(m)
	}
	return nil
}

// watchMFA warns 15 and 5 minutes before the MFA session ends, asks for a
// new code in the last 5 minutes when a terminal is at hand, and says when
// it has ended.
func (s *Source) watchMFA(m *mfaSession) {
	defer s.wg.Done()
	tick := time.NewTicker(m.tick)
	defer tick.Stop()
	var warned struct {
		ends              time.Time
		early, late, over bool
	}
	for {
		select {
		case <-s.done:
			return
		case <-tick.C:
		}
		st := m.state()
		if st.Ends.IsZero() {
			continue
		}
		if !st.Ends.Equal(warned.ends) {
			warned.ends, warned.early, warned.late, warned.over = st.Ends, false, false, false
		}
		left := time.Until(st.Ends)
		attrs := []any{"mfa_serial", m.serial, "ends", st.Ends.UTC().Format(time.RFC3339)}
		if m.profile != "" {
			attrs = append(attrs, "profile", m.profile)
		}
		switch {
		case left <= 0 && !warned.over:
			warned.over = true
			s.log.Warn("the MFA session has ended: logins fail until a new code is given", append(attrs,
				"fix", (&MFAError{Profile: m.profile, Serial: m.serial, Kind: MFAEnded}).Fix())...)
		case left > 0 && left <= mfaWarnLate && !warned.late:
			warned.late, warned.early = true, true
			s.log.Warn("the MFA session ends in 5 minutes", attrs...)
			if m.opts.Prompt != nil {
				s.promptAgain(m)
			}
		case left > mfaWarnLate && left <= mfaWarnEarly && !warned.early:
			warned.early = true
			s.log.Warn("the MFA session ends in 15 minutes", attrs...)
		}
	}
}

// promptAgain asks for a code once on the terminal, until the session
// ends or the Source closes.
func (s *Source) promptAgain(m *mfaSession) {
	ctx, cancel := context.WithDeadline(context.Background(), m.state().Ends)
	defer cancel()
	go func() {
		select {
		case <-s.done:
			cancel()
		case <-ctx.Done():
		}
	}()
	code, err := m.opts.Prompt(ctx, m.serial)
	if err != nil || strings.TrimSpace(code) == "" {
		return
	}
	if err := m.authenticate(ctx, strings.TrimSpace(code)); err != nil {
		s.log.Warn("the new MFA code was refused", "error", err)
		return
	}
	s.log.Info("MFA session renewed", "mfa_serial", m.serial, "ends", m.state().Ends.UTC().Format(time.RFC3339))
}

// isLongTerm reports long-term IAM user keys, the only ones
// GetSessionToken accepts.
func isLongTerm(c aws.Credentials) bool { return c.SessionToken == "" && !c.CanExpire }
