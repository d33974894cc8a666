package emulator

// connectPolicy allows rds-db:connect as each of users, their dbuser ARNs
// made by arn.
func connectPolicy(arn func(user string) string, users []string) Policy {
	arns := make([]string, len(users))
	for i, u := range users {
		arns[i] = arn(u)
	}
	return Policy{Statements: []Statement{{Effect: "Allow", Action: []string{"rds-db:connect"}, Resource: arns}}}
}
