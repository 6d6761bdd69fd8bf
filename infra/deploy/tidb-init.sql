-- A template: infra/deploy/tidb-start.sh puts the passwords of the compose secrets in place of the
-- two placeholders below (escaped for a string literal) and gives the result to tidb-server as
-- --initialize-sql-file, which runs it once, when it bootstraps a new cluster.
-- The database that LIKES_DATABASE_URL names (`likes-pipeline init` then creates its tables, the
-- migrations, on every start of the stack), the user the likes services connect as (all of the
-- database `likes`, nothing else), and root's password: nothing on the network logs in without one.
CREATE DATABASE IF NOT EXISTS likes;
CREATE USER IF NOT EXISTS 'likes'@'%' IDENTIFIED BY '@LIKES_PASSWORD@';
GRANT ALL PRIVILEGES ON likes.* TO 'likes'@'%';
ALTER USER 'root'@'%' IDENTIFIED BY '@ROOT_PASSWORD@';
