package emulator

import (
	"encoding/xml"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
)

// Endpoints of the RDS and IAM APIs a Fault can be injected into;
// "rds:ACTION" and "iam:ACTION" (e.g. "rds:DescribeDBInstances") target
// one action and are consulted first.
const (
	FaultRDS = "rds" // every RDS API action
	FaultIAM = "iam" // every IAM API action
)

const (
	rdsAPIVersion = "2014-10-31"
	rdsNamespace  = "http://rds.amazonaws.com/doc/2014-10-31/"
	iamAPIVersion = "2010-05-08"
	iamNamespace  = "https://iam.amazonaws.com/doc/2010-05-08/"
)

// dbRecord is what the RDS API knows about one emulated front: an
// instance, or (after JoinCluster) a cluster's endpoint. Fields are
// guarded by AWS.mu.
type dbRecord struct {
	identifier        string // the endpoint's first label
	endpoint          string
	port              int
	engine            string // "postgres" or "mysql"
	resourceID        string // DbiResourceId
	iamAuth           bool
	clusterID         string // set by JoinCluster
	clusterResourceID string
	member            *clusterMember // set for an instance of an emulated Aurora cluster (StartAuroraPostgres)
	global            *GlobalCluster // set by ServeGlobal
	verifyRate        float64        // SetVerifyRate
	failVerifies      int            // FailNextVerifies, what is left
}

// registerDB records a front for the RDS API, with IAM auth enabled.
func (a *AWS) registerDB(kind, endpoint string, port int, resourceID string) *dbRecord {
	id, _, _ := strings.Cut(endpoint, ".")
	d := &dbRecord{identifier: id, endpoint: endpoint, port: port, resourceID: resourceID, iamAuth: true,
		engine: strings.TrimPrefix(kind, "rds-")}
	a.mu.Lock()
	defer a.mu.Unlock()
	a.dbs = append(a.dbs, d)
	return d
}

// unregisterDB forgets a closed front.
func (a *AWS) unregisterDB(d *dbRecord) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.dbs = slices.DeleteFunc(a.dbs, func(x *dbRecord) bool { return x == d })
}

// signedService is the service a SigV4 Authorization header's credential
// scope names ("" when there is none).
func signedService(h string) string {
	_, rest, ok := strings.Cut(h, "Credential=")
	if !ok {
		return ""
	}
	cred, _, _ := strings.Cut(rest, ",")
	fields := strings.Split(cred, "/")
	if len(fields) != 5 {
		return ""
	}
	return fields[3]
}

// apiAction serves one action of a query-protocol API for an
// authenticated caller; reqID goes into the answer's metadata.
type apiAction func(who principal, params url.Values, reqID string, log *slog.Logger) (any, *stsError)

// serveAPI serves requests signed for the RDS or IAM API (the query
// protocol, as STS); it reports whether the request was one.
func (a *AWS) serveAPI(w http.ResponseWriter, r *http.Request) bool {
	switch signedService(r.Header.Get("Authorization")) {
	case "rds":
		a.serveQueryAPI(w, r, "rds", rdsAPIVersion, rdsNamespace, map[string]apiAction{
			"DescribeDBInstances":    a.describeDBInstances,
			"DescribeDBClusters":     a.describeDBClusters,
			"DescribeGlobalClusters": a.describeGlobalClusters,
		})
	case "iam":
		a.serveQueryAPI(w, r, "iam", iamAPIVersion, iamNamespace, map[string]apiAction{
			"SimulatePrincipalPolicy": a.simulatePrincipalPolicy,
		})
	default:
		return false
	}
	return true
}

func (a *AWS) serveQueryAPI(w http.ResponseWriter, r *http.Request, service, version, ns string, actions map[string]apiAction) {
	reqID := newRequestID()
	params, body, serr := readSTSRequest(w, r)
	action := params.Get("Action")
	log := a.log.With("service", service, "action", action, "request_id", reqID)
	var resp any
	if serr == nil {
		if f, ok := a.takeFault(service+":"+action, service); ok && !a.applyFault(r, f, service+":"+action) {
			if f.Status == 0 || r.Context().Err() != nil {
				return
			}
			serr = newSTSError(f.Status, f.Code, f.Message, "injected fault")
		}
	}
	fn, known := actions[action]
	if serr == nil && (params.Get("Version") != version || !known) {
		serr = newSTSError(http.StatusBadRequest, "InvalidAction",
			fmt.Sprintf("Could not find operation %s for version %s", action, params.Get("Version")), "")
	}
	if serr == nil {
		var who principal
		if who, serr = a.authenticateFor(r, body, service); serr == nil {
			if service == "iam" && who.session && who.kind == "User" && !who.mfa {
				// GetSessionToken credentials reach IAM only with MFA.
				serr = newSTSError(http.StatusForbidden, "InvalidClientTokenId",
					"The security token included in the request is invalid", "GetSessionToken credentials without MFA call IAM")
			} else {
				resp, serr = fn(who, params, reqID, log)
			}
		}
	}
	if serr != nil {
		log.Warn(service+" request rejected", "status", serr.status, "code", serr.code, "reason", serr.reason)
		writeXML(w, reqID, serr.status, errorResponse{
			Xmlns:     ns,
			Error:     errorBody{Type: errorType(serr.status), Code: serr.code, Message: serr.message},
			RequestID: reqID,
		})
		return
	}
	writeXML(w, reqID, http.StatusOK, resp)
}

// authorize decides whether who may call action on resource, by who's
// identity policy, as AWS does for a caller of the same account; the
// denial is worded as AWS words it.
func (a *AWS) authorize(who principal, action, resource string) *stsError {
	if ok, why := who.policy.Allows(action, resource, mfaKeys(nil, who, a.Now())); !ok {
		kind := "no identity-based policy allows the " + action + " action"
		if strings.HasPrefix(why, "explicit Deny") {
			kind = "of an explicit deny in an identity-based policy"
		}
		return newSTSError(http.StatusForbidden, "AccessDenied",
			fmt.Sprintf("User: %s is not authorized to perform: %s on resource: %s because %s", who.arn, action, resource, kind),
			"policy: "+why)
	}
	return nil
}

func (a *AWS) rdsARN(kind, id string) string {
	return "arn:" + a.Partition() + ":rds:" + a.region + ":" + a.accountID + ":" + kind + ":" + id
}

// authorizeDescribe checks that who may call action on the DB of this kind
// ("db" or "cluster") named id, or on all of them when id is empty, as
// RDS checks a Describe call against the ARN it names.
func (a *AWS) authorizeDescribe(who principal, action, kind, id string) *stsError {
	resource := a.rdsARN(kind, "*")
	if id != "" {
		resource = a.rdsARN(kind, id)
	}
	return a.authorize(who, action, resource)
}

func (a *AWS) describeDBInstances(who principal, params url.Values, reqID string, log *slog.Logger) (any, *stsError) {
	id := params.Get("DBInstanceIdentifier")
	if serr := a.authorizeDescribe(who, "rds:DescribeDBInstances", "db", id); serr != nil {
		return nil, serr
	}
	resp := &describeDBInstancesResponse{Xmlns: rdsNamespace}
	resp.ResponseMetadata.RequestID = reqID
	a.mu.Lock()
	for _, d := range a.dbs {
		// The DBs are this account's: another account's caller sees none.
		// A front that is a cluster's endpoint (JoinCluster) is no
		// instance; an emulated Aurora cluster's instances are.
		if who.account != a.accountID || d.clusterID != "" && d.member == nil || id != "" && d.identifier != id {
			continue
		}
		x := dbInstanceXML{
			Identifier: d.identifier, Engine: d.engine, Status: "available",
			Endpoint:   endpointXML{Address: d.endpoint, Port: d.port},
			ResourceID: d.resourceID, IAMAuth: d.iamAuth, ARN: a.rdsARN("db", d.identifier),
		}
		if d.member != nil {
			x.ClusterID = d.clusterID
			x.Engine = auroraEngine(d.engine)
		}
		resp.Result.Instances = append(resp.Result.Instances, x)
	}
	a.mu.Unlock()
	if id != "" && len(resp.Result.Instances) == 0 {
		return nil, newSTSError(http.StatusNotFound, "DBInstanceNotFound", fmt.Sprintf("DBInstance %s not found.", id), "")
	}
	log.Info("rds instances described", "caller", who.arn, "count", len(resp.Result.Instances))
	return resp, nil
}

func (a *AWS) describeDBClusters(who principal, params url.Values, reqID string, log *slog.Logger) (any, *stsError) {
	id := params.Get("DBClusterIdentifier")
	if serr := a.authorizeDescribe(who, "rds:DescribeDBClusters", "cluster", id); serr != nil {
		return nil, serr
	}
	resp := &describeDBClustersResponse{Xmlns: rdsNamespace}
	resp.ResponseMetadata.RequestID = reqID
	a.mu.Lock()
	// A cluster is listed once, however many of its instances have
	// fronts; its members are those instances.
	listed := map[string]int{}
	for _, d := range a.dbs {
		if who.account != a.accountID || d.clusterID == "" || id != "" && d.clusterID != id {
			continue
		}
		n, seen := listed[d.clusterID]
		if !seen {
			n = len(resp.Result.Clusters)
			listed[d.clusterID] = n
			resp.Result.Clusters = append(resp.Result.Clusters, dbClusterXML{
				Identifier: d.clusterID, Engine: auroraEngine(d.engine),
				Status: "available", Endpoint: d.endpoint, Port: d.port,
				ResourceID: d.clusterResourceID, IAMAuth: d.iamAuth, ARN: a.rdsARN("cluster", d.clusterID),
			})
		}
		if m := d.member; m != nil {
			cl := &resp.Result.Clusters[n]
			cl.Endpoint, cl.ReaderEndpoint = m.writerEndpoint, m.readerEndpoint
			cl.Members = append(cl.Members, dbClusterMemberXML{Identifier: d.identifier, IsWriter: m.writer})
		}
	}
	a.mu.Unlock()
	if id != "" && len(resp.Result.Clusters) == 0 {
		return nil, newSTSError(http.StatusNotFound, "DBClusterNotFoundFault", fmt.Sprintf("DBCluster %s not found.", id), "")
	}
	log.Info("rds clusters described", "caller", who.arn, "count", len(resp.Result.Clusters))
	return resp, nil
}

type endpointXML struct {
	Address string `xml:"Address"`
	Port    int    `xml:"Port"`
}

type dbInstanceXML struct {
	Identifier string      `xml:"DBInstanceIdentifier"`
	Engine     string      `xml:"Engine"`
	Status     string      `xml:"DBInstanceStatus"`
	Endpoint   endpointXML `xml:"Endpoint"`
	ResourceID string      `xml:"DbiResourceId"`
	IAMAuth    bool        `xml:"IAMDatabaseAuthenticationEnabled"`
	ARN        string      `xml:"DBInstanceArn"`
	ClusterID  string      `xml:"DBClusterIdentifier,omitempty"`
}

type describeDBInstancesResponse struct {
	XMLName xml.Name `xml:"DescribeDBInstancesResponse"`
	Xmlns   string   `xml:"xmlns,attr"`
	Result  struct {
		Instances []dbInstanceXML `xml:"DBInstances>DBInstance"`
	} `xml:"DescribeDBInstancesResult"`
	ResponseMetadata responseMetadata `xml:"ResponseMetadata"`
}

type dbClusterXML struct {
	Identifier string `xml:"DBClusterIdentifier"`
	Engine     string `xml:"Engine"`
	Status     string `xml:"Status"`
	Endpoint   string `xml:"Endpoint"`
	Port       int    `xml:"Port"`
	ResourceID string `xml:"DbClusterResourceId"`
	IAMAuth    bool   `xml:"IAMDatabaseAuthenticationEnabled"`
	ARN        string `xml:"DBClusterArn"`
	// Set for an emulated Aurora cluster (StartAuroraPostgres).
	ReaderEndpoint string               `xml:"ReaderEndpoint,omitempty"`
	Members        []dbClusterMemberXML `xml:"DBClusterMembers>DBClusterMember"`
}

type dbClusterMemberXML struct {
	Identifier string `xml:"DBInstanceIdentifier"`
	IsWriter   bool   `xml:"IsClusterWriter"`
}

type describeDBClustersResponse struct {
	XMLName xml.Name `xml:"DescribeDBClustersResponse"`
	Xmlns   string   `xml:"xmlns,attr"`
	Result  struct {
		Clusters []dbClusterXML `xml:"DBClusters>DBCluster"`
	} `xml:"DescribeDBClustersResult"`
	ResponseMetadata responseMetadata `xml:"ResponseMetadata"`
}
