package emulator

import "strings"

// clusterMember is what the RDS API knows of an instance of an emulated
// Aurora cluster beyond the instance itself: the cluster's endpoint names
// (DescribeDBClusters reports them once for the cluster) and whether the
// instance is the writer now. Guarded by AWS.mu, as dbRecord is.
type clusterMember struct {
	writerEndpoint string
	readerEndpoint string
	writer         bool
}

// auroraEngine is the RDS engine name of an Aurora cluster over engine
// ("postgres" or "mysql").
func auroraEngine(engine string) string {
	return "aurora-" + strings.Replace(engine, "postgres", "postgresql", 1)
}

// registerMembers tells the RDS API that c's fronts are instances of one
// cluster, so that DescribeDBInstances lists each with its instance
// endpoint and DescribeDBClusters lists the cluster once with its members.
func (c *Cluster) registerMembers() {
	c.mu.Lock()
	writer := c.writer
	c.mu.Unlock()
	for id, f := range c.fronts {
		f.aws.mu.Lock()
		f.db.member = &clusterMember{writerEndpoint: c.WriterName(), readerEndpoint: c.ReaderName(), writer: id == writer}
		f.aws.mu.Unlock()
	}
}

// reportWriter makes the RDS API name id as the cluster's writer, after a
// failover.
func (c *Cluster) reportWriter(id string) {
	for fid, f := range c.fronts {
		f.aws.mu.Lock()
		if f.db.member != nil {
			f.db.member.writer = fid == id
		}
		f.aws.mu.Unlock()
	}
}
