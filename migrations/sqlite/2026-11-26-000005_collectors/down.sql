DROP TABLE collectors;
