"""The control plane: list, plan, dispatch and watch copy runs. Used by the CLI and Airflow."""
