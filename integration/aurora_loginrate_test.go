package integration

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rds-iam-proxy/rds-iam-proxy/internal/config"
	"github.com/rds-iam-proxy/rds-iam-proxy/internal/launch"
)

// auroraLoginRate: a routed login goes through the login-rate guard under
// the instance endpoint it logs in to (RDS throttles IAM logins per
// instance), so a burst of clients at 1 login a second with a 2 s wait
// is served in turn and the rest are told, naming the writer instance.
func auroraLoginRate(t *testing.T, r *auroraRig) {
	port := r.proxy(t, func(c *launch.Config) {
		c.LoginRate, c.LoginBurst, c.LoginWait = 1, 1, config.Duration(2*time.Second)
	})
	writer := r.cluster.InstanceName(r.cluster.Writer())
	const clients = 8
	var wg sync.WaitGroup
	atts := make([]attempt, clients)
	for i := range clients {
		wg.Go(func() {
			atts[i] = pgxAttempt(t.Context(), dsn(port, iamUser), fmt.Sprintf("rate%d", i), 25*time.Second)
		})
	}
	wg.Wait()
	var ok, paced int
	for _, a := range atts {
		switch {
		case a.err == "":
			ok++
		case strings.Contains(a.err, "too many logins to "+writer+":") && strings.Contains(a.err, "53300"):
			paced++
		default:
			t.Errorf("%s: neither served nor refused by the login-rate guard of the writer %s: %s", a.client, writer, a.err)
		}
	}
	// 1/s with a 2 s wait serves about three of eight at once (fewer when
	// the topology monitor's own logins took the first tokens).
	if ok == 0 || paced == 0 {
		t.Errorf("served %d, refused by the guard %d of %d: want some of each", ok, paced, clients)
	}
}
