"""Quality model pipeline: the Lambda steps of the Step Functions state machine that trains,
gates, registers, approves, publishes and deploys a station's inspection model (issue 6).

The state machine passes its whole state to each step and stores the result under a key:

    {site, line, station, requested_by[_sub]}    execution input (``TrainingRequest``)
    dataset       <- validate_dataset            bucket, prefix, image counts, content hash
    training      <- train_model                 model_version, s3_prefix, card
    evaluation    <- evaluate_model              passed, reasons, unmeasured
    registration  <- register_model              status
    (approval)    <- request_approval            waits for a task token
    component     <- publish_component           component_name, component_version, arn
    deployment    <- deploy_model                deployment_id
"""
