package emulator

import (
	"encoding/xml"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
)

// GlobalCluster is an emulated Aurora global database: clusters in several
// regions, one of them primary (the writer). Its writer endpoint,
// NAME.global-XXXX.global.rds.amazonaws.com, names no region; a front
// that serves it (ServeGlobal) takes tokens signed for the primary's
// region and allowed on the primary cluster's resource id, so a client
// that signs for the wrong region after a switchover is refused, as the
// real one would be once the name points at the new primary.
type GlobalCluster struct {
	aws      *AWS
	id       string
	endpoint string
	members  []GlobalMember // guarded by aws.mu
	primary  int            // index in members; guarded by aws.mu
}

// GlobalMember is one regional cluster of a global database.
type GlobalMember struct {
	Region     string
	ClusterID  string // DBClusterIdentifier in its region
	ResourceID string // its DbClusterResourceId (cluster-...)
}

// AddGlobalCluster creates the global database id over members; the first
// is primary. DescribeGlobalClusters lists it from then on.
func (a *AWS) AddGlobalCluster(id string, members ...GlobalMember) *GlobalCluster {
	g := &GlobalCluster{aws: a, id: id, members: append([]GlobalMember(nil), members...),
		endpoint: id + ".global-" + strings.ToLower(randomText(10)) + ".global.rds.amazonaws.com"}
	a.mu.Lock()
	a.globals = append(a.globals, g)
	a.mu.Unlock()
	return g
}

// Endpoint is the global writer endpoint's name.
func (g *GlobalCluster) Endpoint() string { return g.endpoint }

// Primary is the member that is primary now.
func (g *GlobalCluster) Primary() GlobalMember {
	g.aws.mu.Lock()
	defer g.aws.mu.Unlock()
	return g.members[g.primary]
}

// Switchover makes the member in region primary, as a managed switchover
// or a failover does.
func (g *GlobalCluster) Switchover(region string) error {
	g.aws.mu.Lock()
	defer g.aws.mu.Unlock()
	for i, m := range g.members {
		if m.Region == region {
			g.primary = i
			g.aws.log.Info("global database switched over", "global_cluster", g.id, "primary_region", region)
			return nil
		}
	}
	return fmt.Errorf("emulator: global database %s has no member in %s", g.id, region)
}

// arn is the global cluster's ARN: global clusters have no region in it.
func (g *GlobalCluster) arn() string {
	return "arn:" + g.aws.Partition() + ":rds::" + g.aws.accountID + ":global-cluster:" + g.id
}

// memberARN is a member cluster's ARN, in its own region.
func (g *GlobalCluster) memberARN(m GlobalMember) string {
	return "arn:" + partitionOf(m.Region) + ":rds:" + m.Region + ":" + g.aws.accountID + ":cluster:" + m.ClusterID
}

// ServeGlobal makes this front answer for g's writer endpoint: tokens are
// checked against the primary's region and cluster resource id at each
// login. Start the front with Endpoint: g.Endpoint().
func (i *instance) ServeGlobal(g *GlobalCluster) {
	i.aws.mu.Lock()
	defer i.aws.mu.Unlock()
	i.db.global = g
}

// tokenRegion is the region tokens for this front must be signed for.
func (i *instance) tokenRegion() string {
	i.aws.mu.Lock()
	defer i.aws.mu.Unlock()
	if g := i.db.global; g != nil {
		return g.members[g.primary].Region
	}
	return i.aws.region
}

func (a *AWS) describeGlobalClusters(who principal, params url.Values, reqID string, log *slog.Logger) (any, *stsError) {
	id := params.Get("GlobalClusterIdentifier")
	resource := "arn:" + a.Partition() + ":rds::" + a.accountID + ":global-cluster:*"
	if id != "" {
		resource = "arn:" + a.Partition() + ":rds::" + a.accountID + ":global-cluster:" + id
	}
	if serr := a.authorize(who, "rds:DescribeGlobalClusters", resource); serr != nil {
		return nil, serr
	}
	resp := &describeGlobalClustersResponse{Xmlns: rdsNamespace}
	resp.ResponseMetadata.RequestID = reqID
	a.mu.Lock()
	for _, g := range a.globals {
		if who.account != a.accountID || id != "" && g.id != id {
			continue
		}
		x := globalClusterXML{Identifier: g.id, ARN: g.arn(), Status: "available", Endpoint: g.endpoint}
		for i, m := range g.members {
			x.Members = append(x.Members, globalMemberXML{ClusterARN: g.memberARN(m), IsWriter: i == g.primary})
		}
		resp.Result.Clusters = append(resp.Result.Clusters, x)
	}
	a.mu.Unlock()
	if id != "" && len(resp.Result.Clusters) == 0 {
		return nil, newSTSError(http.StatusNotFound, "GlobalClusterNotFoundFault", fmt.Sprintf("Global cluster %s not found.", id), "")
	}
	log.Info("rds global clusters described", "caller", who.arn, "count", len(resp.Result.Clusters))
	return resp, nil
}

type globalMemberXML struct {
	ClusterARN string `xml:"DBClusterArn"`
	IsWriter   bool   `xml:"IsWriter"`
}

type globalClusterXML struct {
	Identifier string            `xml:"GlobalClusterIdentifier"`
	ARN        string            `xml:"GlobalClusterArn"`
	Status     string            `xml:"Status"`
	Endpoint   string            `xml:"Endpoint"`
	Members    []globalMemberXML `xml:"GlobalClusterMembers>GlobalClusterMember"`
}

type describeGlobalClustersResponse struct {
	XMLName xml.Name `xml:"DescribeGlobalClustersResponse"`
	Xmlns   string   `xml:"xmlns,attr"`
	Result  struct {
		Clusters []globalClusterXML `xml:"GlobalClusters>GlobalClusterMember"`
	} `xml:"DescribeGlobalClustersResult"`
	ResponseMetadata responseMetadata `xml:"ResponseMetadata"`
}
