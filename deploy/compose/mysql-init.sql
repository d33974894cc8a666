-- The IAM user of docker-compose.yml. MariaDB has no AWSAuthenticationPlugin:
-- the emulator checks the token, then logs in here as app_user with the
-- password it was given (--mysql-backend-password). Only containers on the
-- compose network reach this server: it publishes no port.
CREATE USER 'app_user'@'%' IDENTIFIED BY 'emulator-backend-pw';
GRANT ALL PRIVILEGES ON app.* TO 'app_user'@'%';
