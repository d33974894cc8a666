package authtoken

import "fmt"

// DBUserARN is the resource an IAM policy must allow rds-db:connect on for
// user. resourceID is the DbiResourceId (db-...), DbClusterResourceId
// (cluster-...) or RDS Proxy id (prx-...); "*" when unknown.
func DBUserARN(region, account, resourceID, user string) string {
	if account == "" {
		account = "ACCOUNT_ID"
	}
	if resourceID == "" {
		resourceID = "*"
	}
	return fmt.Sprintf("arn:aws:rds-db:%s:%s:dbuser:%s/%s", region, account, resourceID, user)
}
