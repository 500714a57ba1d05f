"""QualityInspection Greengrass component: camera images in, InspectionResult out."""
