-- Run by tidb-server once, when it bootstraps a new cluster (--initialize-sql-file in
-- infra/compose.yaml): the database that LIKES_DATABASE_URL names. `likes-pipeline init` then
-- creates its tables (the migrations), and does so on every start of the stack.
CREATE DATABASE IF NOT EXISTS likes;
