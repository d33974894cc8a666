package authtoken

import "fmt"

// DBUserARN is the resource an IAM policy must allow rds-db:connect on for
// user. resourceID is the DbiResourceId (db-...), DbClusterResourceId
// (cluster-...) or RDS Proxy id (prx-...); "*" when unknown. The
// partition comes from the region (see Partition).
func DBUserARN(region, account, resourceID, user string) string {
	if account == "" {
		account = "ACCOUNT_ID"
	}
	if resourceID == "" {
		resourceID = "*"
	}
	return fmt.Sprintf("arn:%s:rds-db:%s:%s:dbuser:%s/%s", Partition(region), region, account, resourceID, user)
}
