"""Training data engine: teacher-labelled real faces, textured synthetic renders, augmentations, datasets.

Data flow (design §5, §7):

    real photos / video frames ──teacher──▶ 478 landmarks ──Eq. 4 fit──▶ S, 73 landmarks ┐
                                            face oval + skin graph cut ──▶ mask           ├─▶ FaceSample
    rig + real textures + backgrounds ──renderer──▶ image, exact mask, landmarks, S       ┘
    FaceSample ──augment (crop jitter, rectangles, hands, objects, negatives, blur …)──▶ dataset shards

Training-time only: nothing here is imported by the run-time pipeline.
"""
