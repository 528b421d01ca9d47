DROP TABLE control_commands;
