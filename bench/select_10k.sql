-- pgbench custom script for bench/pg.sh: one statement returning 10,000 rows (run with -M simple).
SELECT * FROM pgbench_accounts WHERE aid <= 10000;
