"""Boot decisions: which boot a machine gets (decide), the script that says it
(render), and the glue that reads the inventory and records the boot (plan)."""
