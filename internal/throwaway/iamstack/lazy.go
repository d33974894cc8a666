package iamstack

import (
	"context"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/config"
)

// Lazy is a Stack that a package's tests share: started on first use,
// with one IAM user that signs as SignAs, and closed by the package's
// TestMain. The packages that need one (launch, serve) each wrote this out.
type Lazy struct {
	Options    Options
	SignerName string // the IAM user the tests sign as
	SignAs     string // the database user it may connect as

	once   sync.Once
	stack  *Stack
	signer []func(*config.LoadOptions) error
	err    error
}

// Start starts the stack the first time (within a minute) and returns it
// every time, with the same error if it failed.
func (l *Lazy) Start() (*Stack, error) {
	l.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		l.stack, l.err = Start(ctx, l.Options)
		if l.err == nil {
			l.signer = l.stack.Signer(l.SignerName, l.SignAs)
		}
	})
	return l.stack, l.err
}

// Signer is the AWS config options that sign as the stack's IAM user (nil
// before Start succeeded).
func (l *Lazy) Signer() []func(*config.LoadOptions) error { return l.signer }

// Close stops the stack if it was started.
func (l *Lazy) Close() {
	if l.stack != nil {
		l.stack.Close()
	}
}
