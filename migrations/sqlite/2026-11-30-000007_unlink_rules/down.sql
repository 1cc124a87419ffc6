DROP TABLE unlink_rule;
