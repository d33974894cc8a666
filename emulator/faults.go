package emulator

import (
	"net/http"
	"time"
)

// Endpoints a Fault can be injected into.
const (
	FaultSTS       = "sts"       // every STS action
	FaultIMDS      = "imds"      // every instance metadata request
	FaultContainer = "container" // the container credentials endpoint
	// "sts:ACTION" (e.g. "sts:AssumeRole") targets one STS action; it is
	// consulted before FaultSTS.
)

// Fault is a failure injected into one endpoint, to test how a client
// copes with AWS being slow, throttling or down.
type Fault struct {
	// Delay holds the answer back this long (or until the client gives
	// up). With Status 0 the request is then served normally.
	Delay time.Duration
	// Status is the HTTP status to answer with instead of serving; 0
	// serves the request (after Delay).
	Status int
	// Code and Message are the error's code and text (STS and container
	// endpoints); defaults fit Status: Throttling / "Rate exceeded" for
	// 400 and 429, ServiceUnavailable for 503, InternalFailure otherwise.
	Code, Message string
	// Times is how many requests the fault applies to; 0 means until
	// ClearFault.
	Times int

	hits int
}

// Throttling is STS's answer to too many requests (the SDK retries it).
func Throttling() Fault {
	return Fault{Status: http.StatusBadRequest, Code: "Throttling", Message: "Rate exceeded"}
}

// Unavailable is a 503 Service Unavailable.
func Unavailable() Fault {
	return Fault{Status: http.StatusServiceUnavailable, Code: "ServiceUnavailable", Message: "Service is unavailable. Please try again later."}
}

// Slow delays every answer by d, then serves it.
func Slow(d time.Duration) Fault { return Fault{Delay: d} }

// InjectFault makes endpoint (FaultSTS, FaultIMDS, FaultContainer or
// "sts:ACTION") fail as f says, replacing any fault it had.
func (a *AWS) InjectFault(endpoint string, f Fault) {
	if f.Status != 0 && f.Code == "" {
		switch f.Status {
		case http.StatusBadRequest, http.StatusTooManyRequests:
			f.Code, f.Message = "Throttling", "Rate exceeded"
		case http.StatusServiceUnavailable:
			f.Code, f.Message = "ServiceUnavailable", "Service is unavailable. Please try again later."
		default:
			f.Code, f.Message = "InternalFailure", "The request processing has failed because of an unknown error."
		}
	}
	f.hits = 0
	a.mu.Lock()
	defer a.mu.Unlock()
	a.faults[endpoint] = &f
}

// ClearFault removes the fault of endpoint; no endpoint clears all.
// Requests still held back by a cleared Delay are served at once, as a
// recovered service answers what it had queued.
func (a *AWS) ClearFault(endpoints ...string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.faultRelease != nil {
		close(a.faultRelease)
		a.faultRelease = nil
	}
	if len(endpoints) == 0 {
		clear(a.faults)
	}
	for _, e := range endpoints {
		delete(a.faults, e)
	}
}

// FaultHits is how many requests endpoint's current fault has affected.
func (a *AWS) FaultHits(endpoint string) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	if f, ok := a.faults[endpoint]; ok {
		return f.hits
	}
	return 0
}

// takeFault returns the fault that applies to a request to the first of
// endpoints that has one, counting the hit, or nil.
func (a *AWS) takeFault(endpoints ...string) (Fault, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, e := range endpoints {
		f, ok := a.faults[e]
		if !ok {
			continue
		}
		f.hits++
		if f.Times > 0 && f.hits >= f.Times {
			delete(a.faults, e)
		}
		return *f, true
	}
	return Fault{}, false
}

// applyFault waits out the fault's delay; it reports whether the request
// is still to be served (false: answer with f.Status, or the client left).
func (a *AWS) applyFault(r *http.Request, f Fault, endpoint string) bool {
	a.log.Warn("fault injected", "endpoint", endpoint, "status", f.Status, "code", f.Code, "delay", f.Delay)
	if f.Delay > 0 {
		a.mu.Lock()
		if a.faultRelease == nil {
			a.faultRelease = make(chan struct{})
		}
		release := a.faultRelease
		a.mu.Unlock()
		t := time.NewTimer(f.Delay)
		defer t.Stop()
		select {
		case <-t.C:
		case <-release:
			return true
		case <-r.Context().Done():
			return false
		}
	}
	return f.Status == 0
}
