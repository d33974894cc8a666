package topology

import (
	"fmt"
	"strings"
)

// Kind is what an RDS endpoint name points at.
type Kind int

const (
	// Other is a name that is not an RDS endpoint (a local server, a
	// tunnel's name): it is dialed as it is.
	Other Kind = iota
	// Instance is one DB instance (ID.SUFFIX...).
	Instance
	// Cluster is an Aurora cluster's writer endpoint (NAME.cluster-SUFFIX...).
	Cluster
	// Reader is its reader endpoint (NAME.cluster-ro-SUFFIX...).
	Reader
	// Custom is a custom endpoint (NAME.cluster-custom-SUFFIX...): its
	// members are not in the topology, so it is dialed as it is.
	Custom
	// Global is a global database's writer endpoint
	// (NAME.global-ID.global.rds.amazonaws.com).
	Global
	// Proxy is an RDS Proxy endpoint (NAME.proxy-ID...).
	Proxy
)

func (k Kind) String() string {
	return [...]string{"other", "instance", "cluster", "cluster reader", "cluster custom", "global", "rds proxy"}[k]
}

// Endpoint is an endpoint name taken apart.
type Endpoint struct {
	Kind Kind
	Name string // the first label: the instance, cluster or proxy name
	// Suffix is what the cluster's instance names end with after their
	// id: "c0ffee123456.us-east-1.rds.amazonaws.com" for
	// "db.cluster-c0ffee123456.us-east-1.rds.amazonaws.com" (Cluster,
	// Reader, Custom and Instance only).
	Suffix string
}

// ParseEndpoint says what host is: an RDS instance, an Aurora cluster's
// writer, reader or custom endpoint, a global database's writer endpoint,
// an RDS Proxy, or none of these. The commercial, GovCloud and China
// (…rds.REGION.amazonaws.com.cn) forms are understood.
func ParseEndpoint(host string) Endpoint {
	h := strings.ToLower(strings.TrimSuffix(host, "."))
	if !strings.HasSuffix(h, ".rds.amazonaws.com") && !(strings.HasSuffix(h, ".amazonaws.com.cn") && strings.Contains(h, ".rds.")) {
		return Endpoint{}
	}
	labels := strings.Split(h, ".")
	if len(labels) < 5 {
		return Endpoint{}
	}
	name, second := labels[0], labels[1]
	rest := strings.Join(labels[2:], ".")
	switch {
	case strings.HasPrefix(second, "global-") && labels[2] == "global":
		return Endpoint{Kind: Global, Name: name}
	case strings.HasPrefix(second, "proxy-"), second == "endpoint" && len(labels) > 2 && strings.HasPrefix(labels[2], "proxy-"):
		return Endpoint{Kind: Proxy, Name: name}
	case strings.HasPrefix(second, "cluster-custom-"):
		return Endpoint{Kind: Custom, Name: name, Suffix: strings.TrimPrefix(second, "cluster-custom-") + "." + rest}
	case strings.HasPrefix(second, "cluster-ro-"):
		return Endpoint{Kind: Reader, Name: name, Suffix: strings.TrimPrefix(second, "cluster-ro-") + "." + rest}
	case strings.HasPrefix(second, "cluster-"):
		return Endpoint{Kind: Cluster, Name: name, Suffix: strings.TrimPrefix(second, "cluster-") + "." + rest}
	}
	return Endpoint{Kind: Instance, Name: name, Suffix: second + "." + rest}
}

// InstanceHost is the endpoint name of the instance serverID in the
// cluster clusterHost names (its writer, reader or custom endpoint): the
// instance endpoints share the cluster's suffix, as
// "db.cluster-XYZ.REGION.rds.amazonaws.com" and server "db-2" give
// "db-2.XYZ.REGION.rds.amazonaws.com".
func InstanceHost(clusterHost, serverID string) (string, error) {
	e := ParseEndpoint(clusterHost)
	switch e.Kind {
	case Cluster, Reader, Custom:
	default:
		return "", fmt.Errorf("%s is not an Aurora cluster endpoint (NAME.cluster-ID.REGION.rds.amazonaws.com): it is %s", clusterHost, e.Kind)
	}
	if serverID == "" || strings.ContainsAny(serverID, ". /:") {
		return "", fmt.Errorf("topology: server id %q is not a DNS label", serverID)
	}
	return strings.ToLower(serverID) + "." + e.Suffix, nil
}
